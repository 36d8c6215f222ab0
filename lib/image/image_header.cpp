#include "image/image_header.h"

#include <algorithm>
#include <csetjmp>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>

// Before libtiff's headers: tiff.h marks int64 deprecated, and OpenCV's (through these) use it.
#include "image/gif_image.h"
#include "image/heif_image.h"
#include "image/raw_preview.h"

#include <jpeglib.h>
#include <tiffio.h>
#include <webp/decode.h>

namespace cbir {
namespace {

using Status = HeaderRead::Status;

constexpr const char* kNoSize = kNoImageSize;
HeaderRead complete(ImageFormat format, long long width, long long height) { return header_complete(format, width, height); }
HeaderRead refused(ImageFormat format, std::string error) { return header_refused(format, std::move(error)); }
HeaderRead ran_out(ImageFormat format, bool whole) { return header_ran_out(format, whole); }

uint32_t be32(const unsigned char* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }
uint32_t le16(const unsigned char* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8); }
int32_t le32(const unsigned char* p) {
    return static_cast<int32_t>(uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24));
}

// ---- JPEG: libjpeg's own jpeg_read_header, which skips stray bytes between markers exactly as the
// decoder will (a hand-written marker walk gave up on them, and the decoder then went on to
// allocate whatever the frame header claimed).

struct JpegErrors {
    jpeg_error_mgr manager;  // first: libjpeg hands back a pointer to it
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr cinfo) {
    auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, errors->message);
    std::longjmp(errors->jump, 1);
}

void jpeg_quiet(j_common_ptr, int) {}  // warnings: the decoder repeats them if it matters

// Bytes in memory; at their end it suspends (fill_input_buffer returns FALSE) instead of inventing an
// end-of-image marker as jpeg_mem_src does, so that a header cut short is told from a bad one.
void source_init(j_decompress_ptr) {}
boolean source_fill(j_decompress_ptr) { return FALSE; }
void source_skip(j_decompress_ptr cinfo, long count) {
    if (count <= 0) return;
    jpeg_source_mgr* source = cinfo->src;
    const size_t skip = std::min(static_cast<size_t>(count), source->bytes_in_buffer);
    source->next_input_byte += skip;
    source->bytes_in_buffer -= skip;
}
void source_term(j_decompress_ptr) {}

enum class JpegResult { header, suspended, error };

// C-style on purpose: nothing with a destructor lives between setjmp and a longjmp.
JpegResult jpeg_header_size(const unsigned char* data, size_t size, unsigned* width, unsigned* height, char* message) {
    jpeg_decompress_struct cinfo;
    JpegErrors errors;
    cinfo.err = jpeg_std_error(&errors.manager);
    errors.manager.error_exit = jpeg_fail;
    errors.manager.emit_message = jpeg_quiet;
    errors.message[0] = '\0';
    if (setjmp(errors.jump)) {
        jpeg_destroy_decompress(&cinfo);
        std::snprintf(message, JMSG_LENGTH_MAX, "%s", errors.message);
        return JpegResult::error;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_source_mgr source;
    source.next_input_byte = data;
    source.bytes_in_buffer = size;
    source.init_source = source_init;
    source.fill_input_buffer = source_fill;
    source.skip_input_data = source_skip;
    source.resync_to_restart = jpeg_resync_to_restart;
    source.term_source = source_term;
    cinfo.src = &source;
    const int status = jpeg_read_header(&cinfo, TRUE);
    *width = cinfo.image_width;
    *height = cinfo.image_height;
    jpeg_destroy_decompress(&cinfo);
    return status == JPEG_HEADER_OK ? JpegResult::header : JpegResult::suspended;
}

HeaderRead read_jpeg(std::string_view bytes, bool whole) {
    unsigned width = 0, height = 0;
    char message[JMSG_LENGTH_MAX] = "";
    switch (jpeg_header_size(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), &width, &height, message)) {
        case JpegResult::header: return complete(ImageFormat::jpeg, width, height);
        case JpegResult::suspended: return ran_out(ImageFormat::jpeg, whole);
        case JpegResult::error: break;
    }
    return refused(ImageFormat::jpeg, std::string(kNoSize) + " (" + message + ")");
}

// ---- TIFF: libtiff reads the first directory, the page OpenCV decodes, through the same kind of
// in-memory client OpenCV uses.

struct TiffMemory {
    const char* data;
    uint64_t size;
    uint64_t position;
    bool ran_out;  // something past the given bytes was asked for
    char message[256];
};

tmsize_t tiff_read(thandle_t handle, void* buffer, tmsize_t count) {
    auto* m = static_cast<TiffMemory*>(handle);
    const uint64_t available = m->size - std::min(m->position, m->size);
    uint64_t n = static_cast<uint64_t>(std::max<tmsize_t>(count, 0));
    if (n > available) {
        m->ran_out = true;
        n = available;
    }
    std::memcpy(buffer, m->data + m->position, n);
    m->position += n;
    return static_cast<tmsize_t>(n);
}
tmsize_t tiff_write(thandle_t, void*, tmsize_t) { return 0; }
toff_t tiff_seek(thandle_t handle, toff_t offset, int whence) {
    auto* m = static_cast<TiffMemory*>(handle);
    uint64_t target = offset;
    if (whence == SEEK_CUR) target = m->position + offset;
    if (whence == SEEK_END) target = m->size + offset;
    if (target > m->size) m->ran_out = true;
    m->position = std::min(target, m->size);  // as OpenCV's reader does
    return m->position;
}
toff_t tiff_size(thandle_t handle) { return static_cast<TiffMemory*>(handle)->size; }
int tiff_close(thandle_t) { return 0; }
int tiff_map(thandle_t, void**, toff_t*) { return 0; }  // not mapped, as in OpenCV
void tiff_unmap(thandle_t, void*, toff_t) {}
int tiff_error(TIFF*, void* user_data, const char* module, const char* format, va_list args) {
    auto* m = static_cast<TiffMemory*>(user_data);
    if (m->message[0] == '\0') {
        char text[200];
        std::vsnprintf(text, sizeof text, format, args);
        std::snprintf(m->message, sizeof m->message, "%s%s%s", module ? module : "", module ? ": " : "", text);
    }
    return 1;  // handled: nothing on stderr
}
int tiff_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

HeaderRead read_tiff(std::string_view bytes, bool whole) {
    TiffMemory memory{bytes.data(), bytes.size(), 0, false, ""};
    TIFFOpenOptions* options = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(options, tiff_error, &memory);
    TIFFOpenOptionsSetWarningHandlerExtR(options, tiff_warning, &memory);
    // Directory arrays (strip offsets, …) are read from the file, so they never need much more
    // memory than the file's size: a directory claiming more is refused, not allocated.
    TIFFOpenOptionsSetMaxSingleMemAlloc(options, static_cast<tmsize_t>(4 * bytes.size() + (64 << 20)));
    TIFF* tif = TIFFClientOpenExt("", "r", &memory, tiff_read, tiff_write, tiff_seek, tiff_close, tiff_size, tiff_map,
                                  tiff_unmap, options);
    TIFFOpenOptionsFree(options);
    // libtiff also weighs fields against the file's size (whether to split a big strip, how large
    // an array may be), so only the whole file may refuse a TIFF or size its strips.
    if (!whole && (!tif || memory.ran_out)) {
        if (tif) TIFFClose(tif);
        return ran_out(ImageFormat::tiff, whole);
    }
    if (!tif) return refused(ImageFormat::tiff, std::string(kNoSize) + (memory.message[0] ? std::string(" (") + memory.message + ")" : ""));
    uint32_t width = 0, height = 0;
    const bool sized = TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &width) && TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &height);
    // OpenCV 4.6's TiffDecoder::readData sizes its RGBA buffer from one tile, or one strip of
    // RowsPerStrip rows (0 or 2^32-1: the whole image), without clamping either to the image.
    const bool tiled = TIFFIsTiled(tif);
    uint32_t tile_width = width, tile_height = 0;
    if (tiled) {
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tile_width);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &tile_height);
    } else {
        TIFFGetField(tif, TIFFTAG_ROWSPERSTRIP, &tile_height);
    }
    TIFFClose(tif);
    if (!sized || width == 0 || height == 0) return refused(ImageFormat::tiff, kNoSize);
    if (tile_width == 0) tile_width = width;
    if (tile_height == 0 || (!tiled && tile_height == std::numeric_limits<uint32_t>::max())) tile_height = height;
    HeaderRead out = complete(ImageFormat::tiff, width, height);
    if (whole) out.header.buffer_pixels = ImageHeader::saturating_product(tile_width, tile_height);
    return out;
}

// ---- PNG: the size is in IHDR, which libpng requires to be the first chunk, 13 bytes long.

HeaderRead read_png(std::string_view bytes, bool whole) {
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
    if (bytes.size() < 24) return ran_out(ImageFormat::png, whole);
    if (be32(b + 8) != 13 || std::memcmp(b + 12, "IHDR", 4) != 0) return refused(ImageFormat::png, std::string(kNoSize) + " (no IHDR chunk first)");
    const uint32_t width = be32(b + 16), height = be32(b + 20);
    if (width == 0 || height == 0 || width > 0x7FFFFFFFu || height > 0x7FFFFFFFu) return refused(ImageFormat::png, kNoSize);
    return complete(ImageFormat::png, width, height);
}

// ---- WebP: OpenCV's reader takes the size from WebPGetFeatures on the first 32 bytes.

HeaderRead read_webp(std::string_view bytes, bool whole) {
    constexpr size_t kHeaderBytes = 32;
    if (bytes.size() < kHeaderBytes) return ran_out(ImageFormat::webp, whole);
    WebPBitstreamFeatures features;
    if (WebPGetFeatures(reinterpret_cast<const uint8_t*>(bytes.data()), kHeaderBytes, &features) != VP8_STATUS_OK ||
        features.width <= 0 || features.height <= 0)
        return refused(ImageFormat::webp, kNoSize);
    return complete(ImageFormat::webp, features.width, features.height);
}

// ---- BMP, as OpenCV's BmpDecoder::readHeader reads it: the info header's size at 14, then a
// 32-bit width and height (a negative height is a top-down image), or 16-bit ones in the 12-byte
// OS/2 header; any other header is not decoded.

HeaderRead read_bmp(std::string_view bytes, bool whole) {
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
    if (bytes.size() < 18) return ran_out(ImageFormat::bmp, whole);
    const int32_t header_size = le32(b + 14);
    long long width = 0, height = 0;
    if (header_size >= 36) {
        if (bytes.size() < 26) return ran_out(ImageFormat::bmp, whole);
        width = le32(b + 18);
        height = le32(b + 22);
    } else if (header_size == 12) {
        if (bytes.size() < 22) return ran_out(ImageFormat::bmp, whole);
        width = le16(b + 18);
        height = le16(b + 20);
    } else {
        return refused(ImageFormat::bmp, std::string(kNoSize) + " (unknown BMP header)");
    }
    if (width <= 0 || height == 0) return refused(ImageFormat::bmp, kNoSize);
    return complete(ImageFormat::bmp, width, height < 0 ? -height : height);
}

// ---- PBM/PGM/PPM, as OpenCV's PxMDecoder reads numbers: skip whitespace and '#' comments (to the end
// of the line), then digits up to INT_MAX; the character after a number is consumed with it.

class PnmReader {
public:
    explicit PnmReader(std::string_view bytes) : bytes_(bytes) {}
    enum class Got { number, ran_out, bad };
    Got number(long long& value) {
        int c;
        if (!next(c)) return Got::ran_out;
        while (!is_digit(c)) {
            if (c == '#') {
                do {
                    if (!next(c)) return Got::ran_out;
                } while (c != '\n' && c != '\r');
                if (!next(c)) return Got::ran_out;
            } else if (is_space(c)) {
                while (is_space(c))
                    if (!next(c)) return Got::ran_out;
            } else {
                return Got::bad;
            }
        }
        value = 0;
        do {
            value = value * 10 + (c - '0');
            if (value > std::numeric_limits<int>::max()) return Got::bad;
            if (!next(c)) return Got::ran_out;
        } while (is_digit(c));
        return Got::number;
    }

private:
    static bool is_digit(int c) { return c >= '0' && c <= '9'; }
    static bool is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }
    bool next(int& c) {
        if (position_ >= bytes_.size()) return false;
        c = static_cast<unsigned char>(bytes_[position_++]);
        return true;
    }
    std::string_view bytes_;
    size_t position_ = 2;  // after "P1" … "P6"
};

HeaderRead read_pnm(std::string_view bytes, bool whole) {
    PnmReader reader(bytes);
    const bool bitmap = bytes[1] == '1' || bytes[1] == '4';
    long long fields[3] = {0, 0, 1};  // width, height, maxval (a PBM has none)
    for (int i = 0; i < (bitmap ? 2 : 3); ++i) {
        switch (reader.number(fields[i])) {
            case PnmReader::Got::number: break;
            case PnmReader::Got::ran_out: return ran_out(ImageFormat::pnm, whole);
            case PnmReader::Got::bad: return refused(ImageFormat::pnm, kNoSize);
        }
    }
    if (fields[0] <= 0 || fields[1] <= 0 || fields[2] <= 0 || fields[2] > 65535) return refused(ImageFormat::pnm, kNoSize);
    return complete(ImageFormat::pnm, fields[0], fields[1]);
}

std::string unsupported(ImageFormat format) {
    const std::string readable = "cbir reads JPEG, PNG, TIFF, WebP, BMP, PBM/PGM/PPM, GIF, HEIC, AVIF and camera RAW";
    if (format == ImageFormat::unknown) return "not a decodable image (unknown format; " + readable + ")";
    return std::string(image_format_name(format)) + " images are not supported (" + readable + ")";
}

}  // namespace

HeaderRead header_complete(ImageFormat format, long long width, long long height) {
    HeaderRead out;
    out.status = Status::complete;
    out.header = {format, width, height, ImageHeader::saturating_product(width, height)};
    return out;
}

HeaderRead header_refused(ImageFormat format, std::string error) {
    HeaderRead out;
    out.status = Status::refused;
    out.header.format = format;
    out.error = std::move(error);
    return out;
}

// The bytes ran out before the header did: the file is truncated, or only its start was given.
HeaderRead header_ran_out(ImageFormat format, bool whole) {
    if (whole) return header_refused(format, std::string(kNoImageSize) + " (it ends first)");
    HeaderRead out;
    out.status = Status::need_more_bytes;
    out.header.format = format;
    return out;
}

HeaderRead read_image_header(std::string_view bytes, bool whole) {
    const ImageFormat format = sniff_image_format(bytes);
    switch (format) {
        case ImageFormat::jpeg: return read_jpeg(bytes, whole);
        case ImageFormat::png: return read_png(bytes, whole);
        case ImageFormat::tiff: return read_tiff(bytes, whole);
        case ImageFormat::webp: return read_webp(bytes, whole);
        case ImageFormat::bmp: return read_bmp(bytes, whole);
        case ImageFormat::pnm: return read_pnm(bytes, whole);
        case ImageFormat::gif: return read_gif_header(bytes, whole);
        case ImageFormat::heic:
        case ImageFormat::avif: return read_heif_header(bytes, whole);
        case ImageFormat::camera_raw: return read_raw_preview_header(bytes, whole);
        default: break;
    }
    // Too few bytes to tell the format yet (the WebP check needs 32).
    if (format == ImageFormat::unknown && !whole && bytes.size() < 32) return ran_out(format, whole);
    return refused(format, unsupported(format));
}

}  // namespace cbir
