#pragma once
// EXIF orientation (1-8) applied to decoded pixels, as OpenCV applies it to the formats it decodes:
// for the readers that hand cbir pixels as stored (a camera RAW's preview, whose orientation is the
// RAW's, not the preview's).
#include <opencv2/core.hpp>

namespace cbir {

// rgb is replaced by the upright image; orientations outside 2-8 leave it as it is.
void apply_exif_orientation(cv::Mat& rgb, int orientation);

}  // namespace cbir
