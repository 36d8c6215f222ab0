#pragma once
// GIF through giflib: the first frame on the logical screen, as a thumbnailer shows it (an animation's
// later frames are never read). The header is the logical screen's size; each frame's own size is
// held to the pixel cap before its pixels are read.
#include <string>
#include <string_view>

#include "image/decode.h"
#include "image/image_header.h"

namespace cbir {

HeaderRead read_gif_header(std::string_view bytes, bool whole);
DecodedImage decode_gif(const std::string& bytes);

}  // namespace cbir
