#include "image/orientation.h"

namespace cbir {

void apply_exif_orientation(cv::Mat& rgb, int orientation) {
    // The same steps as OpenCV's ExifTransform (imgcodecs/src/loadsave.cpp).
    cv::Mat out;
    switch (orientation) {
        case 2: cv::flip(rgb, out, 1); break;  // mirrored left to right
        case 3: cv::flip(rgb, out, -1); break;  // upside down
        case 4: cv::flip(rgb, out, 0); break;  // mirrored top to bottom
        case 5: cv::transpose(rgb, out); break;
        case 6: cv::transpose(rgb, out); cv::flip(out, out, 1); break;  // turned 90° clockwise to view
        case 7: cv::transpose(rgb, out); cv::flip(out, out, -1); break;
        case 8: cv::transpose(rgb, out); cv::flip(out, out, 0); break;  // turned 90° anticlockwise to view
        default: return;
    }
    rgb = out;
}

}  // namespace cbir
