#pragma once
// Which ANN index a store uses, named in the spirit of FAISS's factory strings: "Flat", "HNSW32",
// "IVF2048,Flat", "IVF1024,PQ64" (or "IVF1024,PQ64x8"), or the short names flat, hnsw, ivf, ivfpq
// with their parameters given separately. One string a user can type and a store can record.
#include <cstddef>
#include <optional>
#include <string>

namespace cbir {

enum class IndexKind { Flat, Hnsw, Ivf, IvfPq };

// "flat", "hnsw", "ivf", "ivfpq": the name in store metadata, index file names and output.
std::string index_kind_name(IndexKind kind);
std::optional<IndexKind> parse_index_kind(const std::string& name);

// Below this many vectors an IVF store searches exactly (training would give poor centroids, and
// exact search of so few is fast anyway).
inline constexpr size_t kIvfMinimumVectors = 10000;

// An index's kind, build parameters and search defaults: what a store records and every index is
// made from.
struct IndexSpec {
    IndexKind kind = IndexKind::Hnsw;
    int hnsw_m = 32;                 // graph degree (32: recall@10 0.98 at 1M vectors, ef 64; 16 gave 0.87)
    int hnsw_ef_construction = 200;  // build-time breadth
    int hnsw_ef_search = 64;         // query-time breadth when a search gives none (raised to k)
    int ivf_nlist = 0;               // 0 = chosen from the collection's size when trained
    int ivf_nprobe = 16;             // lists visited when a search gives no number
    int pq_m = 64;                   // sub-quantizers (bytes per vector at 8 bits)
    int pq_bits = 8;

    // The canonical factory-style name: "Flat", "HNSW32", "IVF1024,Flat", "IVFauto,PQ64".
    std::string describe() const;
    bool is_ivf() const { return kind == IndexKind::Ivf || kind == IndexKind::IvfPq; }
    // Whether a store of this spec holding `rows` vectors searches them exactly, without an index
    // file: flat stores, and IVF stores too small to train.
    bool searches_exactly(size_t rows) const { return kind == IndexKind::Flat || (is_ivf() && rows < kIvfMinimumVectors); }
    // How many of `rows` vectors k-means trains on: 64 per list (FAISS wants at least 39), and for
    // PQ at least 64 per code of each sub-quantizer. nlist must be chosen first.
    size_t ivf_training_size(size_t rows) const;
};

// Build parameters given apart from a factory string (cbir index --hnsw-m 16): they refine a new
// store's spec; on an existing store they must be what it has (cbir reindex changes them), never
// ignored.
struct IndexParameters {
    std::optional<int> hnsw_m, hnsw_ef_construction, ivf_nlist, pq_m, pq_bits;
    bool empty() const { return !hnsw_m && !hnsw_ef_construction && !ivf_nlist && !pq_m && !pq_bits; }
    IndexSpec applied_to(IndexSpec spec) const;
};

// Whether two specs build the same index: kind, the name's parameters and the build breadth.
bool same_index_build(const IndexSpec& a, const IndexSpec& b);

// Parses a factory string or a short name; `defaults` supplies what the text leaves out. Returns
// nullopt with a message in *error for anything else.
std::optional<IndexSpec> parse_index_spec(const std::string& text, const IndexSpec& defaults, std::string* error);

// nlist for IVF on n vectors: about 4 sqrt(n), a power of two, with at least 39 training points per
// list (FAISS warns below that).
int choose_ivf_nlist(size_t n);

}  // namespace cbir
