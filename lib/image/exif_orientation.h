#pragma once
// A JPEG's EXIF orientation, read the way OpenCV 4.6's imdecode reads it (so that the TurboJPEG path
// turns photos exactly as the OpenCV path did): the first APP1 segment, its TIFF header after the
// six bytes of "Exif\0\0", the Orientation tag (0x0112) of the first directory; and the same
// flips and transposes.
#include <string_view>

#include <opencv2/core.hpp>

namespace cbir {

// 1 (as stored) to 8; 1 when there is no tag or it cannot be read.
int jpeg_exif_orientation(std::string_view jpeg);

// Turns `image` in place as the tag says (values outside 2..8 leave it as it is).
void apply_exif_orientation(cv::Mat& image, int orientation);

}  // namespace cbir
