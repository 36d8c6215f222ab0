#include "image/image_header.h"

#include <cstdint>
#include <cstring>

namespace cbir {
namespace {

uint32_t be16(const unsigned char* p) { return (uint32_t(p[0]) << 8) | p[1]; }
uint32_t be32(const unsigned char* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }
uint32_t le16(const unsigned char* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8); }
int32_t le32(const unsigned char* p) { return int32_t(uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24)); }
uint32_t le24(const unsigned char* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16); }

std::optional<ImageSize> jpeg_size(const unsigned char* b, size_t n) {
    size_t i = 2;
    while (i + 9 < n) {
        if (b[i] != 0xFF) return std::nullopt;
        const unsigned char marker = b[i + 1];
        if (marker == 0xFF) {  // fill byte
            ++i;
            continue;
        }
        const size_t length = be16(b + i + 2);
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC)
            return ImageSize{be16(b + i + 7), be16(b + i + 5)};
        if (length < 2) return std::nullopt;
        i += 2 + length;
    }
    return std::nullopt;
}

}  // namespace

std::optional<ImageSize> read_image_size(const std::string& bytes) {
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
    const size_t n = bytes.size();
    if (n >= 4 && b[0] == 0xFF && b[1] == 0xD8) return jpeg_size(b, n);
    if (n >= 24 && std::memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0 && std::memcmp(b + 12, "IHDR", 4) == 0)
        return ImageSize{be32(b + 16), be32(b + 20)};
    if (n >= 10 && (std::memcmp(b, "GIF87a", 6) == 0 || std::memcmp(b, "GIF89a", 6) == 0))
        return ImageSize{le16(b + 6), le16(b + 8)};
    if (n >= 26 && b[0] == 'B' && b[1] == 'M') {
        const long long h = le32(b + 22);
        return ImageSize{le32(b + 18), h < 0 ? -h : h};
    }
    if (n >= 30 && std::memcmp(b, "RIFF", 4) == 0 && std::memcmp(b + 8, "WEBP", 4) == 0) {
        if (std::memcmp(b + 12, "VP8X", 4) == 0) return ImageSize{le24(b + 24) + 1, le24(b + 27) + 1};
        if (std::memcmp(b + 12, "VP8 ", 4) == 0) return ImageSize{le16(b + 26) & 0x3FFF, le16(b + 28) & 0x3FFF};
        if (std::memcmp(b + 12, "VP8L", 4) == 0) {
            const uint32_t bits = uint32_t(le32(b + 21));
            return ImageSize{(bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1};
        }
    }
    return std::nullopt;
}

std::string image_extension(const std::string& bytes) {
    auto starts = [&](const char* magic, size_t offset = 0) {
        const std::string m(magic);
        return bytes.size() >= offset + m.size() && bytes.compare(offset, m.size(), m) == 0;
    };
    if (starts("\xFF\xD8")) return ".jpg";
    if (starts("\x89PNG")) return ".png";
    if (starts("BM")) return ".bmp";
    if (starts("II*") || starts("MM")) return ".tif";
    if (starts("RIFF") && starts("WEBP", 8)) return ".webp";
    if (starts("P6") || starts("P5") || starts("P3")) return ".ppm";
    if (starts("GIF8")) return ".gif";
    return ".img";
}

}  // namespace cbir
