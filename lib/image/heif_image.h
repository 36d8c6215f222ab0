#pragma once
// HEIC and AVIF through libheif. The header is the primary image's 'ispe' (its stored size, before
// rotation), read by libheif's parse of the file's boxes. Decoding applies the file's own
// transformations (irot, imir, clap) as libheif does by default, and nothing else: HEIF makes those
// properties the orientation and its EXIF orientation informative only (an iPhone writes both, so
// applying the EXIF one too would turn a photo twice). Image grids (an iPhone photo is 48 tiles)
// are assembled by libheif.
#include <string>
#include <string_view>

#include "image/decode.h"
#include "image/image_header.h"

namespace cbir {

HeaderRead read_heif_header(std::string_view bytes, bool whole);
// Decodes in this process, trusting the codecs to allocate what the header declared, which they do
// not check (heif_isolation.h): only the isolated decoder, under its memory cap, calls this.
// header: read_heif_header's, within the pixel cap.
DecodedImage decode_heif_in_this_process(const std::string& bytes, const ImageHeader& header);

}  // namespace cbir
