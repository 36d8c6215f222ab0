// libFuzzer target for everything cbir reads from untrusted bytes: the image path (the file reader,
// format sniffing, every format's header parser on the first bytes and on all of them, the caps,
// the truncation check, OpenCV, the Pillow-exact resize, thumbnails), the index container and HNSW
// graph readers (float and SQ8, read in place and checked record by record as searches reach them),
// the IVF reader with its mapped inverted lists, and the groups of identical vectors in the
// container's extension. The first input byte picks the reader. Built and run by scripts/fuzz.sh.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>
#include <unistd.h>

#include "image/decode.h"
#include "image/image_file.h"
#include "image/image_header.h"
#include "image/preprocess.h"
#include "image/thumbnail.h"
#include "index/grouped_index.h"
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
cbir::IndexSpec small_hnsw() {
    cbir::IndexSpec spec;
    spec.hnsw_m = 16;
    spec.hnsw_ef_search = 16;
    return spec;
}

// The catalogue holds nothing in these runs: every fetched vector is missing (NaN).
void no_vectors(const std::vector<int64_t>& ids, std::vector<float>& vectors) {
    vectors.assign(ids.size() * 4, std::numeric_limits<float>::quiet_NaN());
}

void write_scratch_index(const cbir::IndexFileHeader& header, const std::string& payload, const std::string& extension) {
    cbir::PayloadFile file;
    file.append(payload.data(), payload.size());
    cbir::write_index_file(scratch_file(), header, file, extension);
}

void search_and_change(cbir::VectorIndex& index) {
    const float query[4] = {0.5f, -1.0f, 2.0f, 0.0f};
    index.search(query, {5, 16, 0});
    index.remove({1, 2, 3});
    index.add(2, query);
    index.search(query, {5, 16, 0});
}

void fuzz_container(const std::string& bytes) {
    write_scratch(bytes);
    try {
        cbir::IndexFileHeader header;
        cbir::GroupedIndex::load(scratch_file(), small_hnsw(), no_vectors, header);
    } catch (const cbir::Error&) {
    }
}

// Bytes as the payload of a well-formed container (valid checksums): the HNSW graph reader itself
// must bounds-check every field and link, at open and as searches reach records. `sq8`: the
// payload starts with the quantizer. The header's count is the graph's own, as cbir writes it.
uint64_t u64_at(const std::string& bytes, size_t offset) {
    uint64_t v = 0;
    if (bytes.size() >= offset + 8) std::memcpy(&v, bytes.data() + offset, 8);
    return v;
}

void fuzz_graph(const std::string& bytes, bool sq8) {
    cbir::IndexFileHeader header;
    header.kind = sq8 ? "hnswsq8" : "hnsw";
    header.dimension = 4;
    header.metric = cbir::Metric::L2;
    header.count = u64_at(bytes, (sq8 ? 32 : 0) + 16);
    header.params = {16, 200, 0, 0};
    write_scratch_index(header, bytes, "");
    try {
        auto index = cbir::GroupedIndex::load(scratch_file(), small_hnsw(), no_vectors, header);
        search_and_change(*index);
    } catch (const cbir::Error&) {
    } catch (const std::bad_alloc&) {
    }
}

// Bytes as the payload of a well-formed IVF container: FAISS's reader, then the lists read in place.
void fuzz_ivf(const std::string& bytes, bool pq) {
    cbir::IndexFileHeader header;
    header.kind = pq ? "ivfpq" : "ivf";
    header.dimension = 4;
    header.count = u64_at(bytes, 8);  // FAISS's ntotal
    header.params = {4, 2, 8, 100};
    write_scratch_index(header, bytes, "");
    try {
        auto index = cbir::GroupedIndex::load(scratch_file(), small_hnsw(), no_vectors, header);
        search_and_change(*index);
    } catch (const cbir::Error&) {
    } catch (const std::bad_alloc&) {
    }
}

// Bytes as the groups of identical vectors beside a well-formed graph of three vectors.
void fuzz_groups(const std::string& bytes) {
    static const std::string graph = [] {
        cbir::HnswIndex index(4, cbir::Metric::L2, small_hnsw(), 3);
        for (int64_t id = 1; id <= 3; ++id) {
            const float v[4] = {float(id), 0, 0, 0};
            index.add(id, v);
        }
        cbir::PayloadFile payload;
        cbir::IndexFileHeader header;
        index.write_payload(payload, header);
        std::string bytes(payload.size(), '\0');
        ::pread(payload.fd(), bytes.data(), bytes.size(), 0);
        return bytes;
    }();
    cbir::IndexFileHeader header;
    header.kind = "hnsw";
    header.dimension = 4;
    header.count = 3;
    header.params = {16, 200, 0, 0};
    write_scratch_index(header, graph, bytes);
    try {
        auto index = cbir::GroupedIndex::load(scratch_file(), small_hnsw(), no_vectors, header);
        search_and_change(*index);
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
    const bool variant = (data[0] / 6) % 2;  // SQ8 graphs, IVF-PQ
    switch (data[0] % 6) {
        case 0: fuzz_image_file(bytes); break;
        case 1: fuzz_container(bytes); break;
        case 2: fuzz_graph(bytes, variant); break;
        case 3: cbir::make_thumbnail(bytes, 64); break;  // reduced-scale decodes
        case 5: fuzz_ivf(bytes, variant); break;
        default: fuzz_groups(bytes); break;
    }
    return 0;
}
