#include "image/thumbnail.h"

#include <algorithm>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "image/codecs.h"
#include "image/decode.h"
#include "image/image_header.h"

namespace cbir {

Thumbnail make_thumbnail(const std::string& bytes, int max_side) {
    Thumbnail out;
    // The largest reduction that keeps the shorter of the sides needed at least max_side (the
    // header's size is before EXIF rotation, so both sides are held to it).
    int reduction = 1;
    const HeaderRead header = read_image_header(bytes);
    if (header.status == HeaderRead::Status::complete) {
        const long long shorter = std::min(header.header.width, header.header.height);
        while (reduction < 8 && shorter / (reduction * 2) >= max_side) reduction *= 2;
    }
    DecodedImage decoded = decode_image_bytes(bytes, reduction);
    if (!decoded.ok()) {
        out.error = decoded.error;
        return out;
    }
    cv::Mat image = decoded.rgb;
    const int longer = std::max(image.cols, image.rows);
    if (longer > max_side) {
        const double scale = static_cast<double>(max_side) / longer;
        cv::resize(image, image,
                   cv::Size(std::max(1, static_cast<int>(image.cols * scale + 0.5)),
                            std::max(1, static_cast<int>(image.rows * scale + 0.5))),
                   0, 0, cv::INTER_AREA);
    }
    cv::Mat bgr;
    cv::cvtColor(image, bgr, cv::COLOR_RGB2BGR);
    std::vector<unsigned char> encoded;
    if (!encode_with_opencv(".jpg", bgr, encoded, {cv::IMWRITE_JPEG_QUALITY, 85})) {
        out.error = "cannot encode the thumbnail";
        return out;
    }
    out.jpeg.assign(encoded.begin(), encoded.end());
    return out;
}

}  // namespace cbir
