#pragma once
// Camera RAW (CR2, NEF, ARW, DNG) as photographers' tools show it: libraw's embedded preview, the
// largest the camera wrote (a JPEG, or an uncompressed RGB thumbnail), turned by the RAW's own
// orientation. The sensor data is never developed. The header is the preview's (its JPEG header).
#include <string>
#include <string_view>

#include <opencv2/core.hpp>

#include "image/image_header.h"

namespace cbir {

struct RawPreview {
    std::string jpeg;     // the preview's JPEG bytes, or
    cv::Mat rgb;          // an uncompressed RGB preview (CV_8UC3)
    int orientation = 1;  // the RAW's orientation, as an EXIF value (1-8)
    std::string error;    // why there is no preview; empty on success
    bool ok() const { return error.empty(); }
};

RawPreview extract_raw_preview(std::string_view bytes);

// A RAW's preview lies anywhere in the file: its header needs the whole file.
HeaderRead read_raw_preview_header(std::string_view bytes, bool whole);

}  // namespace cbir
