#pragma once
// Which ANN index a store uses, named in the spirit of FAISS's factory strings: "Flat", "HNSW32",
// "IVF2048,Flat", "IVF1024,PQ64" (or "IVF1024,PQ64x8"), or the short names flat, hnsw, ivf, ivfpq
// with their parameters given separately. One string a user can type and a store can record.
#include <optional>
#include <string>

namespace cbir {

struct IndexSpec {
    std::string kind = "hnsw";  // flat | hnsw | ivf | ivfpq
    int hnsw_m = 32;  // see HnswParams
    int hnsw_ef_construction = 200;
    int ivf_nlist = 0;  // 0 = chosen from the collection's size when trained
    int pq_m = 64;      // sub-quantizers (bytes per vector at 8 bits)
    int pq_bits = 8;

    // The canonical factory-style name: "Flat", "HNSW32", "IVF1024,Flat", "IVFauto,PQ64".
    std::string describe() const;
};

// Parses a factory string or a short name; `defaults` supplies what the text leaves out. Returns
// nullopt with a message in *error for anything else.
std::optional<IndexSpec> parse_index_spec(const std::string& text, const IndexSpec& defaults, std::string* error);

// nlist for IVF on n vectors: about 4 sqrt(n), a power of two, with at least 39 training points per
// list (FAISS warns below that).
int choose_ivf_nlist(size_t n);

// Below this many vectors an IVF store searches exactly (training would give poor centroids, and
// exact search of so few is fast anyway).
inline constexpr size_t kIvfMinimumVectors = 10000;

}  // namespace cbir
