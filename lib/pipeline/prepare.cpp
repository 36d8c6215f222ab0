#include "pipeline/prepare.h"

#include "image/decode.h"
#include "image/exif_orientation.h"
#include "image/image_header.h"
#include "image/image_file.h"
#include "util/hash.h"

namespace cbir {

PreparedImage prepare_image(const std::filesystem::path& path, const PreprocessSpec& spec) {
    ImageFile file = read_image_file(path);
    if (!file.ok()) {
        PreparedImage out;
        out.path = path;
        out.stat = file.stat;
        out.error = std::move(file.error);
        return out;
    }
    PreparedImage prepared = prepare_image_bytes(file.bytes, spec);
    prepared.path = path;
    prepared.stat = file.stat;
    return prepared;
}

PreparedImage prepare_image_bytes(const std::string& bytes, const PreprocessSpec& spec) {
    PreparedImage out;
    // --fast-decode scales JPEGs only (other formats have no cheaper reduced decode).
    int reduction = 1;
    HeaderRead header;
    if (spec.fast_decode_min_side > 0) {
        header = read_image_header(bytes);
        if (header.status == HeaderRead::Status::complete && header.header.format == ImageFormat::jpeg)
            reduction = fast_decode_reduction(header.header.width, header.header.height, spec.fast_decode_min_side);
    }
    DecodedImage decoded = decode_image_bytes(bytes, reduction);
    if (!decoded.ok()) {
        out.error = decoded.error;
        return out;
    }
    out.sha256 = sha256_hex(bytes.data(), bytes.size());
    out.width = decoded.rgb.cols;
    out.height = decoded.rgb.rows;
    if (reduction > 1) {  // the image's own size, as shown (EXIF orientation 5-8 swaps the stored sides)
        const int orientation = jpeg_exif_orientation(bytes);
        const bool swapped = orientation >= 5 && orientation <= 8;
        out.width = static_cast<int>(swapped ? header.header.height : header.header.width);
        out.height = static_cast<int>(swapped ? header.header.width : header.header.height);
    }
    out.input.resize(spec.values_per_image());
    preprocess_rgb(decoded.rgb, spec, out.input.data());
    return out;
}

}  // namespace cbir
