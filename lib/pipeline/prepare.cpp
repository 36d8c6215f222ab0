#include "pipeline/prepare.h"

#include "image/decode.h"
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
    DecodedImage decoded = decode_image_bytes(bytes);
    if (!decoded.ok()) {
        out.error = decoded.error;
        return out;
    }
    out.sha256 = sha256_hex(bytes.data(), bytes.size());
    out.width = decoded.rgb.cols;
    out.height = decoded.rgb.rows;
    out.input.resize(spec.values_per_image());
    preprocess_rgb(decoded.rgb, spec, out.input.data());
    return out;
}

}  // namespace cbir
