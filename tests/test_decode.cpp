// Broken files are reported with a reason, never decoded into garbage; odd formats decode to RGB.
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>

#include <opencv2/imgcodecs.hpp>

#include "image/decode.h"
#include "image/image_header.h"
#include "image/thumbnail.h"
#include "test_support.h"

using namespace cbir;

namespace {

std::string read_bytes(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string encode(const cv::Mat& image, const char* ext) {
    std::vector<uchar> bytes;
    REQUIRE(cv::imencode(ext, image, bytes));
    return std::string(bytes.begin(), bytes.end());
}

}  // namespace

TEST_CASE("decode: a real progressive JPEG decodes at its full size in RGB order") {
    const auto image = decode_image_bytes(read_bytes(test::seed_dir() / "dog1.jpg"));
    REQUIRE(image.ok());
    CHECK(image.rgb.cols == 1100);
    CHECK(image.rgb.rows == 825);
    CHECK(image.rgb.type() == CV_8UC3);
}

TEST_CASE("decode: empty, text and truncated files fail with a reason") {
    CHECK(decode_image_bytes("").error == "empty file");
    CHECK_FALSE(decode_image_bytes("this is not an image\n").ok());
    const std::string jpeg = read_bytes(test::seed_dir() / "dog2.jpg");  // baseline
    const auto truncated = decode_image_bytes(jpeg.substr(0, jpeg.size() / 2));
    CHECK_FALSE(truncated.ok());
    CHECK(truncated.error.find("truncated") != std::string::npos);
    const std::string progressive = read_bytes(test::seed_dir() / "cat1.jpg");
    CHECK_FALSE(decode_image_bytes(progressive.substr(0, progressive.size() - 100)).ok());
    const std::string png = encode(cv::Mat(64, 64, CV_8UC3, cv::Scalar(1, 2, 3)), ".png");
    CHECK_FALSE(decode_image_bytes(png.substr(0, png.size() / 2)).ok());
}

TEST_CASE("decode: grayscale and alpha PNGs become 3-channel RGB") {
    const auto gray = decode_image_bytes(encode(cv::Mat(10, 20, CV_8UC1, cv::Scalar(77)), ".png"));
    REQUIRE(gray.ok());
    CHECK(gray.rgb.type() == CV_8UC3);
    CHECK(gray.rgb.at<cv::Vec3b>(5, 5) == cv::Vec3b(77, 77, 77));
    // BGRA (10, 20, 30, 128) must come out as RGB (30, 20, 10).
    const auto rgba = decode_image_bytes(encode(cv::Mat(8, 8, CV_8UC4, cv::Scalar(10, 20, 30, 128)), ".png"));
    REQUIRE(rgba.ok());
    CHECK(rgba.rgb.at<cv::Vec3b>(1, 1) == cv::Vec3b(30, 20, 10));
}

TEST_CASE("decode: extensions the walk picks up") {
    CHECK(has_image_extension("a/b/photo.JPG"));
    CHECK(has_image_extension("x.webp"));
    CHECK(has_image_extension("x.tiff"));
    CHECK_FALSE(has_image_extension("notes.txt"));
    CHECK_FALSE(has_image_extension("jpg"));
}

TEST_CASE("decode: image sizes are read from headers, and a decompression bomb is refused undecoded") {
    const cv::Mat image(37, 91, CV_8UC3, cv::Scalar(9, 99, 199));
    for (const char* ext : {".jpg", ".png", ".bmp", ".webp"}) {
        CAPTURE(ext);
        const auto size = read_image_size(encode(image, ext));
        REQUIRE(size);
        CHECK(size->width == 91);
        CHECK(size->height == 37);
    }
    const auto progressive = read_image_size(read_bytes(test::seed_dir() / "cat2.jpg"));  // 2800x1575, EXIF first
    REQUIRE(progressive);
    CHECK(progressive->width == 2800);
    CHECK(progressive->height == 1575);
    // A PNG header claiming 100000 x 100000 pixels: refused from the header alone.
    std::string bomb = encode(cv::Mat(4, 4, CV_8UC3, cv::Scalar(0)), ".png");
    for (int i = 0; i < 4; ++i) bomb[16 + i] = bomb[20 + i] = "\x00\x01\x86\xa0"[i];
    const auto refused = decode_image_bytes(bomb);
    CHECK(refused.error.find("decompression bomb") != std::string::npos);
    CHECK_FALSE(read_image_size("not an image at all, just text"));
}

TEST_CASE("thumbnail: a large JPEG shrinks to the asked size, decoded at a reduced scale") {
    cv::Mat gradient(3000, 4000, CV_8UC3);
    for (int y = 0; y < gradient.rows; ++y)
        for (int x = 0; x < gradient.cols; ++x)
            gradient.at<cv::Vec3b>(y, x) = cv::Vec3b(x * 255 / 4000, y * 255 / 3000, 128);
    std::vector<unsigned char> encoded;
    REQUIRE(cv::imencode(".jpg", gradient, encoded));
    const std::string bytes(encoded.begin(), encoded.end());
    const Thumbnail thumbnail = make_thumbnail(bytes, 256);
    REQUIRE_MESSAGE(thumbnail.error.empty(), thumbnail.error);
    const cv::Mat decoded = cv::imdecode(std::vector<unsigned char>(thumbnail.jpeg.begin(), thumbnail.jpeg.end()),
                                         cv::IMREAD_COLOR);
    CHECK(decoded.cols == 256);
    CHECK(decoded.rows == 192);
    // The picture survives: the corners keep the gradient's colours (BGR: blue grows to the right).
    CHECK(decoded.at<cv::Vec3b>(96, 250)[0] > 200);
    CHECK(decoded.at<cv::Vec3b>(96, 5)[0] < 40);
    // A reduced decode is what makes it cheap: 1/8 scale still leaves 500 pixels for 256.
    CHECK(decode_image_bytes(bytes, 8).rgb.cols == 500);
    CHECK(!make_thumbnail("not an image", 256).error.empty());
}
