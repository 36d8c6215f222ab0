// libFuzzer target for everything cbir reads from untrusted bytes: the image path (the file reader,
// format sniffing, every format's header parser on the first bytes and on all of them, the caps,
// the truncation check, OpenCV, the Pillow-exact resize, thumbnails) and the index container and
// HNSW graph readers. The first input byte picks the reader. Built and run by scripts/fuzz.sh.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "image/decode.h"
#include "image/image_file.h"
#include "image/image_header.h"
#include "image/preprocess.h"
#include "image/thumbnail.h"
#include "index/hnsw_index.h"
#include "index/index_file.h"
#include "util/error.h"

namespace {

std::filesystem::path scratch_file() {
    static const std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("cbir-fuzz-" + std::to_string(::getpid()) + ".idx");
    return path;
}

void write_scratch(const std::string& bytes) {
    FILE* f = std::fopen(scratch_file().c_str(), "wb");
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
}

// Bytes as an image file, through the one reader every caller uses, then decoded and preprocessed;
// the header parsers also see a prefix of the bytes, as the reader's first read gives them.
void fuzz_image_file(const std::string& bytes) {
    if (bytes.size() > 1) cbir::read_image_header(std::string_view(bytes).substr(0, bytes.size() / 2), /*whole=*/false);
    write_scratch(bytes);
    const cbir::ImageFile file = cbir::read_image_file(scratch_file());
    if (!file.ok()) return;
    cbir::DecodedImage image = cbir::decode_image_bytes(file.bytes);
    if (!image.ok()) return;
    cbir::PreprocessSpec spec;
    std::vector<float> input(spec.values_per_image());
    cbir::preprocess_rgb(image.rgb, spec, input.data());
}

// Raw bytes as a whole index file: the header parser and checksum must reject them cleanly.
void fuzz_container(const std::string& bytes) {
    write_scratch(bytes);
    try {
        cbir::IndexFileHeader header;
        cbir::HnswIndex::load(scratch_file(), 16, header);
    } catch (const cbir::Error&) {
    }
}

// Bytes as the payload of a well-formed container (valid checksum): the HNSW graph reader itself
// must bounds-check every field and link.
void fuzz_graph(const std::string& bytes) {
    cbir::IndexFileHeader header;
    header.kind = "hnsw";
    header.dimension = 4;
    header.metric = cbir::Metric::L2;
    header.count = bytes.size() > 8 ? static_cast<uint8_t>(bytes[0]) : 0;
    header.params = {16, 200, 0, 0};
    cbir::write_index_file(scratch_file(), header, bytes.data(), bytes.size());
    try {
        auto index = cbir::HnswIndex::load(scratch_file(), 16, header);
        const float query[4] = {0.5f, -1.0f, 2.0f, 0.0f};
        index->search(query, {5, 16, 0});
    } catch (const cbir::Error&) {
    } catch (const std::bad_alloc&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    setenv("CBIR_MAX_PIXELS", "4000000", 1);  // keep each run fast; the cap itself is under test
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 4) {
        case 0: fuzz_image_file(bytes); break;
        case 1: fuzz_container(bytes); break;
        case 2: fuzz_graph(bytes); break;
        default: cbir::make_thumbnail(bytes, 64); break;  // reduced-scale decodes
    }
    return 0;
}
