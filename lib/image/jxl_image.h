#pragma once
// JPEG XL through libjxl: the header is the codestream's basic info; decoding gives the first frame
// as 8-bit RGB with the image's orientation applied (libjxl's default).
#include <string>
#include <string_view>

#include "image/decode.h"
#include "image/image_header.h"

namespace cbir {

HeaderRead read_jxl_header(std::string_view bytes, bool whole);
DecodedImage decode_jxl(const std::string& bytes);

}  // namespace cbir
