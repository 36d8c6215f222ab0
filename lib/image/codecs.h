#pragma once
// OpenCV's image codecs (imdecode, imencode), opened with dlopen the first time an image is decoded
// or encoded. Linked like the other libraries, libopencv_imgcodecs costs every process 60-80 ms
// before main: Debian builds it with GDAL, some 130 libraries to map and bind, while a one-shot
// `cbir query` through a server has 0.1 s in all and decodes nothing. Same calls, same results.
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace cbir {

// As cv::imdecode and cv::imencode. Throws cbir::Error when the library cannot be loaded.
cv::Mat decode_with_opencv(const cv::Mat& bytes, int flags);
bool encode_with_opencv(const std::string& extension, const cv::Mat& image, std::vector<uchar>& out,
                        const std::vector<int>& params = {});

}  // namespace cbir
