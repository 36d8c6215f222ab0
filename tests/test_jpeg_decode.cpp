// JPEGs decode through TurboJPEG with the pixels OpenCV's imdecode gave (the path before it), EXIF
// orientation included; --fast-decode's DCT-scaled decode keeps the image's own size in the record
// and meets the same hostile-input rules.
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "image/decode.h"
#include "image/exif_orientation.h"
#include "image/jpeg_turbo.h"
#include "image/preprocess.h"
#include "pipeline/prepare.h"
#include "test_support.h"

using namespace cbir;

namespace {

std::string read_bytes(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string encode(const cv::Mat& image, const std::vector<int>& params = {}) {
    std::vector<uchar> bytes;
    REQUIRE(cv::imencode(".jpg", image, bytes, params));
    return std::string(bytes.begin(), bytes.end());
}

std::string app1(const std::string& payload) {
    const size_t length = payload.size() + 2;
    return "\xff\xe1" + std::string(1, static_cast<char>(length >> 8)) + static_cast<char>(length & 0xff) + payload;
}

// An EXIF APP1 with a Make string (read by OpenCV before the orientation) and the Orientation tag,
// in either byte order, inserted right after SOI so that it is the first APP1.
std::string with_exif_orientation(std::string jpeg, int orientation, bool little_endian) {
    auto u16 = [&](int v) {
        return little_endian ? std::string{static_cast<char>(v & 0xff), static_cast<char>(v >> 8)}
                             : std::string{static_cast<char>(v >> 8), static_cast<char>(v & 0xff)};
    };
    auto u32 = [&](uint32_t v) { return little_endian ? u16(v & 0xffff) + u16(v >> 16) : u16(v >> 16) + u16(v & 0xffff); };
    std::string tiff = (little_endian ? "II" : "MM") + u16(42) + u32(8) + u16(2);
    tiff += u16(0x010F) + u16(2) + u32(6) + u32(8 + 2 + 2 * 12 + 4);                // Make, ASCII, at the end
    tiff += u16(0x0112) + u16(3) + u32(1) + u16(orientation) + u16(0);             // Orientation, SHORT
    tiff += u32(0) + std::string("Maker\0", 6);                                     // no next IFD; the string
    jpeg.insert(2, app1(std::string("Exif\0\0", 6) + tiff));
    return jpeg;
}

// What the decode before TurboJPEG gave: OpenCV's imdecode (EXIF applied), in RGB order.
cv::Mat opencv_rgb(const std::string& bytes, int reduction = 1) {
    const int mode = reduction == 8   ? cv::IMREAD_REDUCED_COLOR_8
                     : reduction == 4 ? cv::IMREAD_REDUCED_COLOR_4
                     : reduction == 2 ? cv::IMREAD_REDUCED_COLOR_2
                                      : cv::IMREAD_COLOR;
    cv::Mat bgr = cv::imdecode(std::vector<uchar>(bytes.begin(), bytes.end()), mode);
    REQUIRE(!bgr.empty());
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    return rgb;
}

void check_same_as_opencv(const std::string& bytes, int reduction = 1) {
    const auto turbo = decode_jpeg_turbo(bytes, reduction);
    REQUIRE(turbo.has_value());
    REQUIRE_MESSAGE(turbo->ok(), turbo->error);
    const cv::Mat before = opencv_rgb(bytes, reduction);
    REQUIRE(turbo->rgb.size() == before.size());
    CHECK(cv::norm(turbo->rgb, before, cv::NORM_INF) == 0);
}

cv::Mat gradient(int rows, int cols) {
    cv::Mat image(rows, cols, CV_8UC3);
    for (int y = 0; y < rows; ++y)
        for (int x = 0; x < cols; ++x)
            image.at<cv::Vec3b>(y, x) = cv::Vec3b(x * 255 / cols, y * 255 / rows, (x * y) % 251);
    return image;
}

}  // namespace

TEST_CASE("jpeg: TurboJPEG gives OpenCV's pixels on the sample photos, at full and reduced scales") {
    for (const auto& entry : std::filesystem::directory_iterator(test::seed_dir())) {
        if (entry.path().extension() != ".jpg") continue;
        CAPTURE(entry.path().filename().string());
        const std::string bytes = read_bytes(entry.path());
        for (int reduction : {1, 2, 8}) {
            CAPTURE(reduction);
            check_same_as_opencv(bytes, reduction);
        }
    }
}

TEST_CASE("jpeg: EXIF orientation is applied as OpenCV applies it, in every orientation and byte order") {
    // dog1 is progressive, person1 baseline; cat2 carries an EXIF block of its own (orientation 1),
    // which the inserted one precedes: only the first APP1 counts.
    for (const char* name : {"dog1.jpg", "person1.jpg", "cat2.jpg"}) {
        const std::string photo = read_bytes(test::seed_dir() / name);
        for (int orientation = 1; orientation <= 8; ++orientation)
            for (bool little_endian : {false, true}) {
                CAPTURE(name);
                CAPTURE(orientation);
                CAPTURE(little_endian);
                const std::string bytes = with_exif_orientation(photo, orientation, little_endian);
                CHECK(jpeg_exif_orientation(bytes) == orientation);
                check_same_as_opencv(bytes);
            }
    }
    const std::string small = encode(gradient(45, 67));
    CHECK(decode_image_bytes(with_exif_orientation(small, 6, true)).rgb.cols == 45);  // turned: 67 x 45 shown as 45 x 67
    // An XMP APP1 first: OpenCV reads only the first APP1, so the EXIF one behind it is not applied.
    const std::string xmp_first = app1(std::string("http://ns.adobe.com/xap/1.0/\0<x/>", 34));
    std::string hidden = with_exif_orientation(small, 6, false);
    hidden.insert(2, xmp_first);
    CHECK(jpeg_exif_orientation(hidden) == 1);
    check_same_as_opencv(hidden);
}

TEST_CASE("jpeg: TurboJPEG gives OpenCV's pixels for greyscale, 4:4:4, progressive and restart-marker JPEGs") {
    const cv::Mat image = gradient(101, 157);  // sizes that are not multiples of the MCU
    cv::Mat gray;
    cv::cvtColor(image, gray, cv::COLOR_BGR2GRAY);
    const std::vector<std::pair<const char*, std::string>> files = {
        {"greyscale", encode(gray)},
        // Luma and chroma qualities that differ make OpenCV 4.6 write 4:4:4 (no subsampling).
        {"4:4:4", encode(image, {cv::IMWRITE_JPEG_LUMA_QUALITY, 90, cv::IMWRITE_JPEG_CHROMA_QUALITY, 70})},
        {"progressive 4:2:0", encode(image, {cv::IMWRITE_JPEG_PROGRESSIVE, 1})},
        {"restart markers", encode(image, {cv::IMWRITE_JPEG_RST_INTERVAL, 3})},
        {"quality 100", encode(image, {cv::IMWRITE_JPEG_QUALITY, 100})},
    };
    for (const auto& [name, bytes] : files) {
        CAPTURE(name);
        for (int reduction : {1, 2, 4, 8}) {
            CAPTURE(reduction);
            check_same_as_opencv(bytes, reduction);
        }
    }
}

TEST_CASE("jpeg: corrupt entropy data fails or decodes as OpenCV did, never crashes") {
    std::string bytes = encode(gradient(64, 64));
    const size_t scan = bytes.rfind("\xff\xda");
    REQUIRE(scan != std::string::npos);
    for (size_t i = scan + 20; i < bytes.size() - 10; i += 37) bytes[i] = static_cast<char>(bytes[i] ^ 0x5a);
    const auto turbo = decode_jpeg_turbo(bytes);
    REQUIRE(turbo.has_value());
    if (turbo->ok()) check_same_as_opencv(bytes);
}

TEST_CASE("fast decode: the reduction keeps the shorter side at the floor or above (libjpeg rounds up)") {
    CHECK(fast_decode_reduction(6000, 4000, 448) == 8);  // 500
    CHECK(fast_decode_reduction(4000, 3000, 448) == 4);  // 750; 1/8 would give 375
    CHECK(fast_decode_reduction(3000, 4000, 448) == 4);
    CHECK(fast_decode_reduction(1600, 895, 448) == 2);   // ceil(895 / 2) = 448
    CHECK(fast_decode_reduction(1600, 894, 448) == 1);
    CHECK(fast_decode_reduction(384, 256, 448) == 1);    // Corel-1K: never reduced
    CHECK(fast_decode_reduction(6000, 4000, 0) == 1);    // exact recipe
    CHECK(PreprocessSpec::from_name(PreprocessSpec{}.name())->fast_decode_min_side == 0);
    CHECK(PreprocessSpec::from_name(PreprocessSpec::fast_decode().name())->fast_decode_min_side == kFastDecodeMinSide);
    CHECK_FALSE(PreprocessSpec::from_name(PreprocessSpec{}.name() + "+jpeg-dct-scaled-min-side-1"));
}

TEST_CASE("fast decode: a large JPEG is decoded reduced, recorded at its own size, features close to exact") {
    // cat2.jpg, 2800 x 1575, turned by EXIF 6: shown 1575 x 2800; decoded at 1/2 (788 >= 448; 1/4 gives 394).
    const std::string bytes = with_exif_orientation(read_bytes(test::seed_dir() / "cat2.jpg"), 6, false);
    const PreparedImage exact = prepare_image_bytes(bytes, PreprocessSpec{});
    const PreparedImage fast = prepare_image_bytes(bytes, PreprocessSpec::fast_decode());
    REQUIRE_MESSAGE(exact.ok(), exact.error);
    REQUIRE_MESSAGE(fast.ok(), fast.error);
    CHECK(fast.width == 1575);
    CHECK(fast.height == 2800);
    CHECK(fast.width == exact.width);
    CHECK(fast.height == exact.height);
    CHECK(fast.sha256 == exact.sha256);
    CHECK(fast.input != exact.input);  // decoded another way...
    CHECK(test::relative_l2_error(fast.input, exact.input) < 0.05);  // ...to nearly the same model input (2 % here)
    // A PNG has no reduced decode: the same input either way.
    std::vector<uchar> png;
    REQUIRE(cv::imencode(".png", gradient(900, 1200), png));
    const std::string png_bytes(png.begin(), png.end());
    CHECK(prepare_image_bytes(png_bytes, PreprocessSpec::fast_decode()).input ==
          prepare_image_bytes(png_bytes, PreprocessSpec{}).input);
}

TEST_CASE("fast decode: hostile JPEGs are refused on the reduced path as on the full one") {
    // Pixel cap, from the header: a frame claiming 32767 x 32767.
    std::string bomb = encode(cv::Mat(8, 8, CV_8UC1, cv::Scalar(128)));
    const size_t sof = bomb.find("\xff\xc0");
    REQUIRE(sof != std::string::npos);
    bomb[sof + 5] = bomb[sof + 7] = static_cast<char>(0x7f);
    bomb[sof + 6] = bomb[sof + 8] = static_cast<char>(0xff);
    // Scan count: a progressive JPEG with 150 scans of no data.
    std::string scans = encode(gradient(16, 16), {cv::IMWRITE_JPEG_PROGRESSIVE, 1});
    const size_t last_scan = scans.rfind("\xff\xda");
    const size_t scan_length = (static_cast<unsigned char>(scans[last_scan + 2]) << 8) | static_cast<unsigned char>(scans[last_scan + 3]);
    std::string empty_scan = scans.substr(last_scan, 2 + scan_length);
    std::string many;
    for (int i = 0; i < 150; ++i) many += empty_scan;
    scans.insert(last_scan, many);
    // Truncated: no end-of-image marker after the last scan.
    const std::string photo = read_bytes(test::seed_dir() / "dog1.jpg");
    const std::string truncated = photo.substr(0, photo.size() / 2);
    for (const auto& spec : {PreprocessSpec{}, PreprocessSpec::fast_decode()}) {
        CAPTURE(spec.name());
        CHECK(prepare_image_bytes(bomb, spec).error.find("image of 32767\u00d732767 pixels exceeds the limit") == 0);
        CHECK(prepare_image_bytes(scans, spec).error.find("scans (at most 100") != std::string::npos);
        CHECK(prepare_image_bytes(truncated, spec).error.find("truncated JPEG") == 0);
    }
}
