#include "image/exif_orientation.h"

#include <cstdint>
#include <optional>

namespace cbir {
namespace {

constexpr unsigned char kApp1 = 0xE1;
constexpr unsigned char kStartOfScan = 0xDA;
constexpr unsigned char kEndOfImage = 0xD9;
constexpr uint16_t kOrientationTag = 0x0112;
constexpr size_t kExifPrefix = 6;  // "Exif\0\0", skipped unread as OpenCV does

// The payload of the first APP1 segment before the first scan, walking markers as libjpeg's
// next_marker does (stray bytes before a marker's 0xFF and repeated 0xFF fill bytes are skipped).
std::optional<std::string_view> first_app1(std::string_view jpeg) {
    auto byte = [&](size_t i) { return static_cast<unsigned char>(jpeg[i]); };
    if (jpeg.size() < 4 || byte(0) != 0xFF || byte(1) != 0xD8) return std::nullopt;
    size_t at = 2;
    while (at < jpeg.size()) {
        while (at < jpeg.size() && byte(at) != 0xFF) ++at;
        while (at < jpeg.size() && byte(at) == 0xFF) ++at;
        if (at >= jpeg.size()) return std::nullopt;
        const unsigned char marker = byte(at++);
        if (marker == kStartOfScan || marker == kEndOfImage) return std::nullopt;
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // TEM, RSTn: no length
        if (at + 2 > jpeg.size()) return std::nullopt;
        const size_t length = (static_cast<size_t>(byte(at)) << 8) | byte(at + 1);
        if (length < 2) return std::nullopt;
        if (marker == kApp1) return jpeg.substr(at + 2, std::min(length - 2, jpeg.size() - at - 2));
        at += length;
    }
    return std::nullopt;
}

// OpenCV's ExifReader: little-endian after "II", else big-endian; the 0x002A mark, IFD0's offset and
// entries, read in order. The orientation is the SHORT at entry + 8 whatever the entry's type says,
// and the first one wins. An entry OpenCV reads a value of (strings, rationals) whose value lies
// past the end stops its walk, and the orientation is then lost only if it came after.
class TiffReader {
public:
    explicit TiffReader(std::string_view data) : data_(data) {}

    int orientation() const {
        const auto mark = u16(2);
        const auto ifd = u32(4);
        if (!mark || *mark != 0x002A || !ifd) return 1;
        const auto entries = u16(*ifd);
        if (!entries) return 1;
        for (size_t i = 0, entry = size_t{*ifd} + 2; i < *entries; ++i, entry += 12) {
            const auto tag = u16(entry);
            if (!tag) return 1;
            if (*tag == kOrientationTag) {
                const auto value = u16(entry + 8);
                return value ? *value : 1;
            }
            if (!value_readable(*tag, entry)) return 1;
        }
        return 1;
    }

private:
    // Whether OpenCV reads this entry's value without running off the end.
    bool value_readable(uint16_t tag, size_t entry) const {
        switch (tag) {
            case 0x010E: case 0x010F: case 0x0110: case 0x0131: case 0x0132: case 0x8298: {  // strings
                const auto size = u32(entry + 4);
                if (!size) return false;
                size_t offset = 8;  // (sic: OpenCV reads a short string from offset 8 of the block)
                if (*size > 4) {
                    const auto pointed = u32(entry + 8);
                    if (!pointed) return false;
                    offset = *pointed;
                }
                return offset <= data_.size() && offset + *size <= data_.size();
            }
            case 0x011A: case 0x011B: return rationals_readable(entry, 1);  // resolutions
            case 0x013E: return rationals_readable(entry, 2);               // white point
            case 0x013F: case 0x0214: return rationals_readable(entry, 6);  // primaries, reference black/white
            case 0x0211: return rationals_readable(entry, 3);               // YCbCr coefficients
            case 0x0128: case 0x0213: return u16(entry + 8).has_value();    // resolution unit, YCbCr positioning
            default: return true;
        }
    }
    bool rationals_readable(size_t entry, size_t count) const {
        const auto offset = u32(entry + 8);
        return offset && size_t{*offset} + 8 * count <= data_.size();
    }

private:
    bool little() const { return data_.size() > 1 && data_[0] == 'I' && data_[1] == 'I'; }
    unsigned char at(size_t i) const { return static_cast<unsigned char>(data_[i]); }
    std::optional<uint16_t> u16(size_t offset) const {
        if (offset + 1 >= data_.size()) return std::nullopt;
        return little() ? static_cast<uint16_t>(at(offset) | (at(offset + 1) << 8))
                        : static_cast<uint16_t>((at(offset) << 8) | at(offset + 1));
    }
    std::optional<uint32_t> u32(size_t offset) const {
        if (offset + 3 >= data_.size()) return std::nullopt;
        const uint32_t b0 = at(offset), b1 = at(offset + 1), b2 = at(offset + 2), b3 = at(offset + 3);
        return little() ? b0 | (b1 << 8) | (b2 << 16) | (b3 << 24) : (b0 << 24) | (b1 << 16) | (b2 << 8) | b3;
    }

    std::string_view data_;
};

}  // namespace

int jpeg_exif_orientation(std::string_view jpeg) {
    const auto app1 = first_app1(jpeg);
    if (!app1 || app1->size() <= kExifPrefix) return 1;
    return TiffReader(app1->substr(kExifPrefix)).orientation();
}

void apply_exif_orientation(cv::Mat& image, int orientation) {
    switch (orientation) {
        case 2: cv::flip(image, image, 1); break;
        case 3: cv::flip(image, image, -1); break;
        case 4: cv::flip(image, image, 0); break;
        case 5: cv::transpose(image, image); break;
        case 6: cv::transpose(image, image); cv::flip(image, image, 1); break;
        case 7: cv::transpose(image, image); cv::flip(image, image, -1); break;
        case 8: cv::transpose(image, image); cv::flip(image, image, 0); break;
        default: break;
    }
}

}  // namespace cbir
