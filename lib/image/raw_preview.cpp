#include "image/raw_preview.h"

#include <cstring>
#include <memory>

#include <libraw.h>

#include "image/limits.h"

namespace cbir {
namespace {

// libraw reports damaged data on stderr unless given handlers; a failure is reported once, by us.
void quiet_data_error(void*, const char*, int) {}
void quiet_memory_error(void*, const char*, const char*) {}

// libraw's flip (dcraw's: bit 4 transpose, 2 upside down, 1 mirrored) as the EXIF orientation it came from.
int exif_orientation(int flip) {
    switch (flip) {
        case 1: return 2;
        case 2: return 4;
        case 3: return 3;
        case 4: return 5;
        case 5: return 8;
        case 6: return 6;
        case 7: return 7;
        default: return 1;
    }
}

}  // namespace

RawPreview extract_raw_preview(std::string_view bytes) {
    RawPreview out;
    const auto raw = std::make_unique<LibRaw>();  // large: not on the stack
    raw->set_dataerror_handler(quiet_data_error, nullptr);
    raw->set_memerror_handler(quiet_memory_error, nullptr);
    // open_buffer only reads the buffer, whatever its signature says.
    int status = raw->open_buffer(const_cast<char*>(bytes.data()), bytes.size());
    if (status != LIBRAW_SUCCESS) {
        out.error = std::string("not a camera RAW libraw reads (") + libraw_strerror(status) + ")";
        return out;
    }
    const libraw_thumbnail_t& thumbnail = raw->imgdata.thumbnail;
    // What unpack_thumb will copy or allocate is held to the file and to the pixel cap first.
    if (thumbnail.tlength > bytes.size()) {
        out.error = "the embedded preview runs past the end of the file";
        return out;
    }
    out.error = image_limit_error({ImageFormat::camera_raw, thumbnail.twidth, thumbnail.theight,
                                   ImageHeader::saturating_product(thumbnail.twidth, thumbnail.theight)});
    if (!out.ok()) return out;
    status = raw->unpack_thumb();
    if (status != LIBRAW_SUCCESS) {
        out.error = std::string("no embedded preview (") + libraw_strerror(status) + ")";
        return out;
    }
    out.orientation = exif_orientation(raw->imgdata.sizes.flip);
    if (thumbnail.tformat == LIBRAW_THUMBNAIL_JPEG && thumbnail.thumb && thumbnail.tlength > 0) {
        out.jpeg.assign(thumbnail.thumb, thumbnail.tlength);
        return out;
    }
    if (thumbnail.tformat == LIBRAW_THUMBNAIL_BITMAP && thumbnail.tcolors == 3 && thumbnail.thumb &&
        static_cast<size_t>(thumbnail.tlength) == static_cast<size_t>(thumbnail.twidth) * thumbnail.theight * 3 &&
        thumbnail.twidth > 0 && thumbnail.theight > 0) {
        out.rgb = cv::Mat(thumbnail.theight, thumbnail.twidth, CV_8UC3);
        std::memcpy(out.rgb.data, thumbnail.thumb, thumbnail.tlength);
        return out;
    }
    out.error = "the embedded preview is neither JPEG nor 8-bit RGB";
    return out;
}

HeaderRead read_raw_preview_header(std::string_view bytes, bool whole) {
    if (!whole) return header_ran_out(ImageFormat::camera_raw, whole);
    const RawPreview preview = extract_raw_preview(bytes);
    if (!preview.ok()) return header_refused(ImageFormat::camera_raw, preview.error);
    if (!preview.rgb.empty()) return header_complete(ImageFormat::camera_raw, preview.rgb.cols, preview.rgb.rows);
    const HeaderRead jpeg = read_image_header(preview.jpeg);
    if (jpeg.header.format != ImageFormat::jpeg)
        return header_refused(ImageFormat::camera_raw, "the embedded preview is not a JPEG");
    if (jpeg.status != HeaderRead::Status::complete)
        return header_refused(ImageFormat::camera_raw, "the embedded preview: " + jpeg.error);
    return header_complete(ImageFormat::camera_raw, jpeg.header.width, jpeg.header.height);
}

}  // namespace cbir
