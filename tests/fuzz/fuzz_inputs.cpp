// libFuzzer target for everything cbir reads from untrusted bytes: the image decode path (header
// sizes, truncation check, OpenCV, the Pillow-exact resize) and the index container and HNSW graph
// readers. The first input byte picks the reader. Built and run by scripts/fuzz.sh.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "image/decode.h"
#include "image/preprocess.h"
#include "index/hnsw_index.h"
#include "index/index_file.h"
#include "util/error.h"

namespace {

std::filesystem::path scratch_file() {
    static const std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("cbir-fuzz-" + std::to_string(::getpid()) + ".idx");
    return path;
}

void fuzz_decode(const std::string& bytes) {
    cbir::DecodedImage image = cbir::decode_image_bytes(bytes);
    if (!image.ok()) return;
    cbir::PreprocessSpec spec;
    std::vector<float> input(spec.values_per_image());
    cbir::preprocess_rgb(image.rgb, spec, input.data());
}

// Raw bytes as a whole index file: the header parser and checksum must reject them cleanly.
void fuzz_container(const std::string& bytes) {
    {
        FILE* f = std::fopen(scratch_file().c_str(), "wb");
        std::fwrite(bytes.data(), 1, bytes.size(), f);
        std::fclose(f);
    }
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
    switch (data[0] % 3) {
        case 0: fuzz_decode(bytes); break;
        case 1: fuzz_container(bytes); break;
        default: fuzz_graph(bytes); break;
    }
    return 0;
}
