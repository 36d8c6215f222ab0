#include "pipeline/prepare.h"

#include <cerrno>
#include <cstring>

#include "image/decode.h"
#include "util/hash.h"
#include "util/read_file.h"

namespace cbir {

PreparedImage prepare_image(const std::filesystem::path& path, const PreprocessSpec& spec) {
    PreparedImage out;
    out.path = path;
    auto st = stat_file(path);
    if (!st) {
        out.error = std::string("cannot stat: ") + std::strerror(errno);
        return out;
    }
    out.stat = *st;
    const auto bytes = read_whole_file(path, out.error);
    if (!bytes) return out;
    PreparedImage prepared = prepare_image_bytes(*bytes, spec);
    prepared.path = path;
    prepared.stat = out.stat;
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
