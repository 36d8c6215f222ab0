#pragma once
// Small JPEG previews for the web page's result grid: a 24 MP photo is 8 MB, its thumbnail 20 KB.
#include <string>

namespace cbir {

struct Thumbnail {
    std::string jpeg;   // empty on failure
    std::string error;  // why the image could not be read
};

// At most max_side pixels on the longer side (never enlarged), EXIF orientation applied. A large
// JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) when that still leaves enough
// pixels, which costs a fraction of a full decode.
Thumbnail make_thumbnail(const std::string& bytes, int max_side);

}  // namespace cbir
