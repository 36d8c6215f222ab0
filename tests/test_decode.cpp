// Broken files are reported with a reason, never decoded into garbage; odd formats decode to RGB.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <thread>
#include <fstream>
#include <iterator>

#include <sys/stat.h>
#define TIFF_DISABLE_DEPRECATED  // libtiff's int64/uint64 typedefs clash with OpenCV's
#include <tiffio.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "image/decode.h"
#include "image/decode_budget.h"
#include "image/limits.h"
#include "image/image_file.h"
#include "image/image_header.h"
#include "image/thumbnail.h"
#include "test_support.h"

using namespace cbir;

namespace {

std::string read_bytes(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string encode(const cv::Mat& image, const char* ext, const std::vector<int>& params = {}) {
    std::vector<uchar> bytes;
    REQUIRE(cv::imencode(ext, image, bytes, params));
    return std::string(bytes.begin(), bytes.end());
}

// An 8 x 8 grey JPEG whose frame header is rewritten to claim width x height; with a stray byte
// between APP0 and the next marker (libjpeg warns "extraneous bytes" and reads on).
std::string tiny_jpeg_claiming(int width, int height, bool stray_byte_after_app0) {
    std::string jpeg = encode(cv::Mat(8, 8, CV_8UC1, cv::Scalar(128)), ".jpg");
    const size_t sof = jpeg.find("\xff\xc0");
    REQUIRE(sof != std::string::npos);
    jpeg[sof + 5] = static_cast<char>(height >> 8);
    jpeg[sof + 6] = static_cast<char>(height & 0xff);
    jpeg[sof + 7] = static_cast<char>(width >> 8);
    jpeg[sof + 8] = static_cast<char>(width & 0xff);
    if (stray_byte_after_app0) {
        REQUIRE(jpeg.compare(2, 2, "\xff\xe0") == 0);
        const size_t app0_length = (static_cast<unsigned char>(jpeg[4]) << 8) | static_cast<unsigned char>(jpeg[5]);
        jpeg.insert(4 + app0_length, 1, '\0');
    }
    return jpeg;
}

struct TiffSpec {
    uint32_t width, height;
    uint16_t bits, samples, compression;
    uint32_t rows_per_strip;  // when not tiled
    uint32_t tile;            // square tiles of this side; 0 for strips
};

void write_tiff_page(TIFF* tif, const TiffSpec& spec) {
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, spec.width);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, spec.height);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, spec.bits);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, spec.samples);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, spec.samples >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISWHITE);
    if (spec.samples == 4) {
        const uint16_t extra = EXTRASAMPLE_UNASSALPHA;
        TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, 1, &extra);
    }
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, spec.compression);
    // A pattern, so that a wrong decode shows (all-white G4 pages stay tiny).
    auto fill = [&](std::vector<uint8_t>& buffer, uint32_t seed) {
        for (size_t i = 0; i < buffer.size(); ++i) buffer[i] = spec.bits == 1 && spec.width > 1000 ? 0 : static_cast<uint8_t>(i * 7 + seed * 13);
    };
    if (spec.tile) {
        TIFFSetField(tif, TIFFTAG_TILEWIDTH, spec.tile);
        TIFFSetField(tif, TIFFTAG_TILELENGTH, spec.tile);
        if (TIFFTileSize(tif) > (1 << 24)) {  // a hostile tile: its header is the point, not its data
            const char junk[16] = {};
            REQUIRE(TIFFWriteRawTile(tif, 0, const_cast<char*>(junk), sizeof junk) > 0);
            return;
        }
        std::vector<uint8_t> tile(static_cast<size_t>(TIFFTileSize(tif)));
        for (uint32_t y = 0; y < spec.height; y += spec.tile)
            for (uint32_t x = 0; x < spec.width; x += spec.tile) {
                fill(tile, x + y);
                REQUIRE(TIFFWriteTile(tif, tile.data(), x, y, 0, 0) >= 0);
            }
    } else {
        TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, spec.rows_per_strip);
        std::vector<uint8_t> row(static_cast<size_t>(TIFFScanlineSize(tif)));
        for (uint32_t y = 0; y < spec.height; ++y) {
            fill(row, y);
            REQUIRE(TIFFWriteScanline(tif, row.data(), y, 0) == 1);
        }
    }
}

std::string write_tiff(const std::filesystem::path& path, const TiffSpec& spec) {
    TIFF* tif = TIFFOpen(path.c_str(), "w");
    REQUIRE(tif);
    write_tiff_page(tif, spec);
    TIFFClose(tif);
    return read_bytes(path);
}

// 30 x 20 first page, 300 x 200 second.
std::string two_page_tiff(const std::filesystem::path& path) {
    TIFF* tif = TIFFOpen(path.c_str(), "w");
    REQUIRE(tif);
    write_tiff_page(tif, {30, 20, 8, 3, COMPRESSION_LZW, 20, 0});
    REQUIRE(TIFFWriteDirectory(tif));
    write_tiff_page(tif, {300, 200, 8, 3, COMPRESSION_LZW, 200, 0});
    TIFFClose(tif);
    return read_bytes(path);
}

// An APP1 EXIF segment with one tag, Orientation, inserted after SOI.
std::string with_exif_orientation(std::string jpeg, int orientation) {
    std::string tiff = std::string("MM\0*\0\0\0\x08", 8) + std::string("\0\x01", 2) +                  // header, 1 entry
                       std::string("\x01\x12\0\x03\0\0\0\x01\0", 9) + static_cast<char>(orientation) +  // SHORT
                       std::string("\0\0", 2) + std::string(4, '\0');                                     // next IFD: none
    const std::string payload = std::string("Exif\0\0", 6) + tiff;
    const size_t length = payload.size() + 2;
    jpeg.insert(2, "\xff\xe1" + std::string(1, static_cast<char>(length >> 8)) + static_cast<char>(length & 0xff) + payload);
    return jpeg;
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
    CHECK(has_image_extension("scan.pgm"));  // the PBM/PGM/PPM family is decoded, so walked
    CHECK(has_image_extension("scan.PBM"));
    for (const char* name : {"IMG_0001.HEIC", "x.heif", "x.avif", "x.gif", "x.CR2", "x.nef", "x.arw", "x.dng"}) {
        CAPTURE(name);
        CHECK(has_image_extension(name));  // decoded by cbir's own readers, so walked
    }
    CHECK_FALSE(has_image_extension("notes.txt"));
    CHECK_FALSE(has_image_extension("jpg"));
}

TEST_CASE("header: every decoded format's size is read from its header") {
    const cv::Mat image(37, 91, CV_8UC3, cv::Scalar(9, 99, 199));
    const cv::Mat gray(37, 91, CV_8UC1, cv::Scalar(99));
    const std::vector<std::pair<std::string, ImageFormat>> cases = {
        {encode(image, ".jpg"), ImageFormat::jpeg},   {encode(image, ".png"), ImageFormat::png},
        {encode(image, ".bmp"), ImageFormat::bmp},    {encode(image, ".webp"), ImageFormat::webp},
        {encode(image, ".tiff"), ImageFormat::tiff},  {encode(image, ".ppm"), ImageFormat::pnm},
        {encode(gray, ".pgm"), ImageFormat::pnm},     {encode(gray, ".pbm"), ImageFormat::pnm},
    };
    for (const auto& [bytes, format] : cases) {
        CAPTURE(image_format_name(format));
        const HeaderRead header = read_image_header(bytes);
        REQUIRE(header.status == HeaderRead::Status::complete);
        CHECK(header.header.format == format);
        CHECK(header.header.width == 91);
        CHECK(header.header.height == 37);
    }
    const auto progressive = read_image_header(read_bytes(test::seed_dir() / "cat2.jpg"));  // 2800x1575, EXIF first
    REQUIRE(progressive.status == HeaderRead::Status::complete);
    CHECK(progressive.header.width == 2800);
    CHECK(progressive.header.height == 1575);
    // PBM/PGM/PPM numbers as OpenCV reads them: comments run to the end of the line.
    const auto commented = read_image_header("P6\n# made by hand\n 12 # width\n7\n255\n" + std::string(12 * 7 * 3, '\x80'));
    REQUIRE(commented.status == HeaderRead::Status::complete);
    CHECK(commented.header.width == 12);
    CHECK(commented.header.height == 7);
    CHECK(decode_image_bytes("P6\n# made by hand\n 12 # width\n7\n255\n" + std::string(12 * 7 * 3, '\x80')).rgb.cols == 12);
}

TEST_CASE("header: a decompression bomb is refused from its header, whatever the format") {
    const std::string limit = "exceeds the limit of " + std::to_string(max_image_pixels()) + " (CBIR_MAX_PIXELS";
    // A PNG claiming 100000 x 100000 pixels.
    std::string png = encode(cv::Mat(4, 4, CV_8UC3, cv::Scalar(0)), ".png");
    for (int i = 0; i < 4; ++i) png[16 + i] = png[20 + i] = "\x00\x01\x86\xa0"[i];
    CHECK(decode_image_bytes(png).error == "image of 100000\u00d7100000 pixels " + limit + "; a decompression bomb?)");
    // A JPEG with a stray byte after APP0 (libjpeg warns and reads on) whose frame claims 32767 x 32767:
    // the old marker walk gave up at the stray byte and the decoder allocated 6.5 GB.
    const std::string jpeg = tiny_jpeg_claiming(32767, 32767, /*stray_byte_after_app0=*/true);
    const HeaderRead header = read_image_header(jpeg);
    REQUIRE(header.status == HeaderRead::Status::complete);
    CHECK(header.header.width == 32767);
    CHECK(decode_image_bytes(jpeg).error.find("image of 32767\u00d732767 pixels " + limit) == 0);
    // A PPM declaring 32000 x 32000 (1.02e9 pixels, under OpenCV's own 2^30 cap).
    const std::string ppm = "P6\n32000 32000\n255\n" + std::string(3000, '\x10');
    CHECK(decode_image_bytes(ppm).error.find("image of 32000\u00d732000 pixels " + limit) == 0);
    // BMP: a 32-bit width and a negative (top-down) height.
    std::string bmp = encode(cv::Mat(2, 2, CV_8UC3, cv::Scalar(0)), ".bmp");
    const int32_t width = 20000, height = -20000;
    std::memcpy(&bmp[18], &width, 4);
    std::memcpy(&bmp[22], &height, 4);
    CHECK(decode_image_bytes(bmp).error.find("image of 20000\u00d720000 pixels " + limit) == 0);
    // WebP: a VP8X canvas of 16384 x 16384.
    std::string webp = encode(cv::Mat(16, 16, CV_8UC3, cv::Scalar(1, 2, 3)), ".webp", {cv::IMWRITE_WEBP_QUALITY, 80});
    REQUIRE(webp.compare(12, 4, "VP8 ") == 0);
    const std::string vp8x = std::string("VP8X") + std::string("\x0a\x00\x00\x00", 4) + std::string(4, '\0') +
                             std::string("\xff\x3f\x00\xff\x3f\x00", 6);  // canvas 16384 x 16384
    webp.insert(12, vp8x);
    const uint32_t riff_size = static_cast<uint32_t>(webp.size() - 8);
    std::memcpy(&webp[4], &riff_size, 4);
    const HeaderRead webp_header = read_image_header(webp);
    REQUIRE(webp_header.status == HeaderRead::Status::complete);
    CHECK(webp_header.header.width == 16384);
    CHECK(decode_image_bytes(webp).error.find("pixels " + limit) != std::string::npos);
}

TEST_CASE("header: TIFF sizes come from libtiff's first directory, tiles included") {
    test::TempDir dir;
    // CCITT G4 of 16000 x 16000 white pixels: a few KB that OpenCV decoded into 1.8 GB.
    const std::string g4 = write_tiff(dir.path() / "g4.tif", {16000, 16000, 1, 1, COMPRESSION_CCITTFAX4, 16000, 0});
    CHECK(g4.size() < 64 * 1024);
    const HeaderRead header = read_image_header(g4);
    REQUIRE(header.status == HeaderRead::Status::complete);
    CHECK(header.header.format == ImageFormat::tiff);
    CHECK(header.header.width == 16000);
    CHECK(decode_image_bytes(g4).error.find("image of 16000\u00d716000 pixels exceeds the limit") == 0);
    // A 16 x 16 image in one tile of 16000 x 16000: OpenCV allocates the whole tile as RGBA (1 GB).
    const std::string tiled = write_tiff(dir.path() / "tile.tif", {16, 16, 8, 3, COMPRESSION_ADOBE_DEFLATE, 0, 16000});
    const HeaderRead tile_header = read_image_header(tiled);
    REQUIRE(tile_header.status == HeaderRead::Status::complete);
    CHECK(tile_header.header.width == 16);
    CHECK(tile_header.header.buffer_pixels == 16000LL * 16000);
    CHECK(decode_image_bytes(tiled).error.find("a TIFF tile (or strip) of 256000000 pixels exceeds the limit") == 0);
    // A directory that is cut off cannot give a size.
    CHECK(decode_image_bytes(g4.substr(0, 12)).error.find("cannot read the image size from its header") == 0);
}

TEST_CASE("format: HEIF brands, and a camera RAW told from a TIFF by its first directory") {
    using namespace std::string_literals;
    CHECK(sniff_image_format("\0\0\0\x18" "ftypheic\0\0\0\0mif1heic"s) == ImageFormat::heic);
    CHECK(sniff_image_format("\0\0\0\x1c" "ftypmif1\0\0\0\0mif1miafavif"s) == ImageFormat::avif);  // a compatible brand
    CHECK(sniff_image_format("\0\0\0\x18" "ftypisom\0\0\0\0isomiso2"s) == ImageFormat::unknown);   // an MP4 video
    CHECK(image_extension("\0\0\0\x18" "ftypavif\0\0\0\0avifmif1"s) == ".avif");
    const std::string cr2 = "II*\0\x10\0\0\0CR\x02\0"s + std::string(64, '\0');
    CHECK(sniff_image_format(cr2) == ImageFormat::camera_raw);
    CHECK(image_extension(cr2) == ".cr2");
    // A plain TIFF (one directory, a full image) stays a TIFF.
    CHECK(sniff_image_format(encode(cv::Mat(8, 8, CV_8UC3, cv::Scalar(1, 2, 3)), ".tiff")) == ImageFormat::tiff);
    // A first directory that is a reduced-resolution image with sub-directories (NEF, ARW).
    std::string nef = "MM\0*\0\0\0\x08\0\x02"s;
    nef += "\x00\xfe\0\x04\0\0\0\x01\0\0\0\x01"s;  // NewSubfileType LONG 1: reduced resolution
    nef += "\x01\x4a\0\x04\0\0\0\x01\0\0\0\x40"s;  // SubIFDs LONG 1
    nef += std::string(64, '\0');
    CHECK(sniff_image_format(nef) == ImageFormat::camera_raw);
    nef[21] = 0;  // a full-resolution first directory: an ordinary TIFF
    CHECK(sniff_image_format(nef) == ImageFormat::tiff);
}

TEST_CASE("header: only formats whose header cbir reads are decoded") {
    CHECK(decode_image_bytes(std::string(5000, '\x42')).error.find("not a decodable image (unknown format") == 0);
    // A GIF is read by giflib: one whose screen is 0 x 0 has no size to read.
    CHECK(decode_image_bytes("GIF89a" + std::string(100, '\0')).error.find("cannot read the image size from its header") == 0);
    // OpenCV 4.6 would decode these; cbir does not read their headers, so it refuses them.
    const std::pair<std::string, const char*> refused[] = {
        {std::string("\x00\x00\x00\x0cjP  \r\n\x87\n", 12) + std::string(100, '\0'), "JPEG 2000 images are not supported"},
        {"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 8 +X 8\n" + std::string(256, '\x01'), "Radiance HDR images are not supported"},
        {"P7\nWIDTH 4\nHEIGHT 4\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n" + std::string(48, '\x01'), "PAM images are not supported"},
        {"PF\n4 4\n-1.0\n" + std::string(4 * 4 * 12, '\0'), "PFM images are not supported"},
        {std::string("\x59\xa6\x6a\x95", 4) + std::string(100, '\0'), "Sun raster images are not supported"},
        {"\xff\x0a" + std::string(100, '\0'), "JPEG XL images are not supported"},  // libjxl 0.7's stderr noise
    };
    for (const auto& [bytes, message] : refused) {
        CAPTURE(message);
        CHECK(decode_image_bytes(bytes).error.find(message) == 0);
    }
}

TEST_CASE("header: a header that runs past the first bytes asks for more, and is refused in a whole file") {
    const std::string jpeg = read_bytes(test::seed_dir() / "cat2.jpg");
    // The frame header comes after the EXIF block: 64 bytes are not enough, and are not refused.
    CHECK(read_image_header(jpeg.substr(0, 64), /*whole=*/false).status == HeaderRead::Status::need_more_bytes);
    const HeaderRead cut = read_image_header(jpeg.substr(0, 64));
    CHECK(cut.status == HeaderRead::Status::refused);
    CHECK(cut.error.find("cannot read the image size from its header") == 0);
    CHECK(read_image_header("P6\n1200", false).status == HeaderRead::Status::need_more_bytes);
    CHECK(read_image_header("P6\n1200", true).status == HeaderRead::Status::refused);
}

TEST_CASE("image file: size cap, regular files only, and the header before the rest") {
    test::TempDir dir;
    // A sparse file one byte over the cap is refused from its size: nothing is read.
    const auto sparse = dir.path() / "huge.jpg";
    { std::ofstream(sparse) << ""; }
    std::filesystem::resize_file(sparse, max_image_file_bytes() + 1);
    const ImageFile huge = read_image_file(sparse);
    CHECK(huge.error == "file of " + std::to_string(max_image_file_bytes() + 1) + " bytes is larger than the " +
                            std::to_string(max_image_file_bytes()) + " allowed (CBIR_MAX_FILE_BYTES)");
    CHECK(huge.stat.size == static_cast<int64_t>(max_image_file_bytes() + 1));
    // A FIFO is refused without waiting for a writer; a folder is refused too.
    const auto fifo = dir.path() / "pipe.jpg";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    CHECK(read_image_file(fifo).error == "not a regular file");
    CHECK(read_image_file(dir.path()).error == "not a regular file");
    CHECK(read_image_file(dir.path() / "missing.jpg").error.find("cannot open: ") == 0);
    // Zeros (a sparse file under the cap) are not an image: refused from the first bytes.
    const auto zeros = dir.path() / "zeros.jpg";
    { std::ofstream(zeros) << ""; }
    std::filesystem::resize_file(zeros, 1 << 20);
    CHECK(read_image_file(zeros).error.find("not a decodable image (unknown format") == 0);
    // A real photo is read whole, with the stat of what was read.
    const auto photo = read_image_file(test::seed_dir() / "dog1.jpg");
    REQUIRE(photo.ok());
    CHECK(photo.bytes == read_bytes(test::seed_dir() / "dog1.jpg"));
    CHECK(photo.stat.size == static_cast<int64_t>(photo.bytes.size()));
    // A JPEG whose frame header is beyond the first 64 KiB (a big APP segment) is read whole and decoded.
    std::string padded = encode(cv::Mat(30, 40, CV_8UC3, cv::Scalar(5, 6, 7)), ".jpg");
    for (int i = 0; i < 3; ++i) padded.insert(2, "\xff\xe9\xff\xff" + std::string(0xfffd, 'x'));
    const auto late = dir.path() / "late-header.jpg";
    { std::ofstream(late, std::ios::binary) << padded; }
    const ImageFile late_file = read_image_file(late);
    REQUIRE_MESSAGE(late_file.ok(), late_file.error);
    CHECK(decode_image_bytes(late_file.bytes).rgb.cols == 40);
}

TEST_CASE("decode: the decoded formats give what OpenCV's imdecode gave before the header checks") {
    test::TempDir dir;
    cv::Mat image(45, 67, CV_8UC3);
    cv::randu(image, 0, 255);
    cv::Mat image16;
    image.convertTo(image16, CV_16UC3, 257);
    cv::Mat gray;
    cv::cvtColor(image, gray, cv::COLOR_BGR2GRAY);
    cv::Mat bgra;
    cv::cvtColor(image, bgra, cv::COLOR_BGR2BGRA);
    const std::vector<std::pair<const char*, std::string>> files = {
        {"jpeg", encode(image, ".jpg")},
        {"progressive jpeg", encode(image, ".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1})},
        {"png", encode(image, ".png")},
        {"16-bit png", encode(image16, ".png")},
        {"rgba png", encode(bgra, ".png")},
        {"bmp", encode(image, ".bmp")},
        {"tiff", encode(image, ".tiff")},
        {"16-bit tiff", encode(image16, ".tiff")},
        {"lossy webp", encode(image, ".webp", {cv::IMWRITE_WEBP_QUALITY, 80})},
        {"lossless webp", encode(bgra, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101})},
        {"ppm", encode(image, ".ppm")},
        {"16-bit ppm", encode(image16, ".ppm")},
        {"pgm", encode(gray, ".pgm")},
        {"ascii ppm", encode(image, ".ppm", {cv::IMWRITE_PXM_BINARY, 0})},
        {"pbm", encode(gray, ".pbm")},
        {"g4 tiff", write_tiff(dir.path() / "g4.tif", {67, 45, 1, 1, COMPRESSION_CCITTFAX4, 45, 0})},
        {"tiled tiff", write_tiff(dir.path() / "tiled.tif", {67, 45, 8, 3, COMPRESSION_ADOBE_DEFLATE, 0, 16})},
        {"striped 16-bit rgba tiff", write_tiff(dir.path() / "rgba.tif", {67, 45, 16, 4, COMPRESSION_LZW, 7, 0})},
        {"two-page tiff", two_page_tiff(dir.path() / "pages.tif")},
        {"exif-rotated jpeg", with_exif_orientation(encode(image, ".jpg"), 6)},
    };
    for (const auto& [name, bytes] : files) {
        CAPTURE(name);
        cv::Mat before = cv::imdecode(std::vector<uchar>(bytes.begin(), bytes.end()), cv::IMREAD_COLOR);
        REQUIRE(!before.empty());
        cv::cvtColor(before, before, cv::COLOR_BGR2RGB);
        const DecodedImage now = decode_image_bytes(bytes);
        REQUIRE_MESSAGE(now.ok(), now.error);
        REQUIRE(now.rgb.size() == before.size());
        CHECK(cv::norm(now.rgb, before, cv::NORM_INF) == 0);
    }
    // The orientation tag is applied (45 x 67 stored, 67 x 45 shown), and a two-page TIFF is its first page.
    CHECK(decode_image_bytes(with_exif_orientation(encode(image, ".jpg"), 6)).rgb.cols == 45);
    CHECK(decode_image_bytes(two_page_tiff(dir.path() / "pages2.tif")).rgb.cols == 30);
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

TEST_CASE("decode budget: pixels held by decoded images make a large decode wait, never fail") {
    const long long cap = cbir::max_image_pixels();
    auto held = cbir::reserve_decode_pixels(cap * 3 / 5);
    std::atomic<bool> got{false};
    std::thread waiter([&] {
        auto second = cbir::reserve_decode_pixels(cap * 3 / 5);
        got = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK_FALSE(got.load());  // 120 % of the budget would be held at once
    auto small = cbir::reserve_decode_pixels(cap / 10);  // a photo beside it does not wait
    held.reset();
    waiter.join();
    CHECK(got.load());
    // More than the budget asks for all of it: it waits for the photo, then gets it.
    auto whole = std::async(std::launch::async, [&] { return cbir::reserve_decode_pixels(cap * 4); });
    CHECK(whole.wait_for(std::chrono::milliseconds(200)) == std::future_status::timeout);
    small.reset();
    CHECK(whole.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
}
