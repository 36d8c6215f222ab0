#pragma once
// Identical vectors share one entry of the underlying ANN index. A photo library holds thousands of
// identical files (exports, backups, placeholders); as separate HNSW nodes they sit at distance 0
// from each other, fill each other's neighbour lists and trap the greedy search (measured: Corel-1K
// plus 3,000 copies of one photo, 199 of 200 queries returned only copies). Here the copies are one
// node, stored under one member's row id (the group's label), and a hit on it expands to every
// row of the group. Results are the rows, nearest first, equal distances in id order: what an exact
// search returns.
//
// Groups are saved in the index file's extension; vectors are compared by their exact bytes.
#include <array>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "index/index_file.h"
#include "index/vector_index.h"

namespace cbir {

class GroupedIndex final : public VectorIndex {
public:
    // `fetch` reads rows' vectors from the catalogue: to find an identical vector the underlying
    // index holds, and to re-store a group whose label row is removed.
    GroupedIndex(std::unique_ptr<VectorIndex> inner, VectorFetcher fetch);

    // The index in a verified file, of whichever kind its header names. Throws IndexFileError.
    // The search defaults (HNSW ef, IVF nprobe) come from `search_defaults`, the rest from the file.
    static std::unique_ptr<GroupedIndex> load(const std::filesystem::path& path, const IndexSpec& search_defaults,
                                              VectorFetcher fetch, IndexFileHeader& header, IndexFileHolding holding);
    // Writes the index file (atomically) as built from `built_from`.
    void save(const std::filesystem::path& path, const CatalogueState& built_from) const override;

    IndexKind kind() const override { return inner_->kind(); }
    Metric metric() const override { return inner_->metric(); }
    int dimension() const override { return inner_->dimension(); }
    size_t size() const override { return inner_->size() + grouped_rows_ - groups_.size(); }
    void add(int64_t id, const float* vector) override { add_batch(&id, vector, 1, true); }
    void add_batch(const int64_t* ids, const float* vectors, size_t count, bool replace) override;
    void remove(const std::vector<int64_t>& ids) override;
    std::vector<Neighbor> search(const float* query, const SearchParams& params) const override;
    std::optional<std::string> rebuild_reason(size_t rows) const override { return inner_->rebuild_reason(rows); }

    const VectorIndex& inner() const { return *inner_; }
    // Rows that share their vector with another row, and how many distinct vectors they are.
    size_t grouped_rows() const { return grouped_rows_; }
    size_t group_count() const { return groups_.size(); }

private:
    using Digest = std::array<uint64_t, 2>;  // XXH3-128 of a vector's bytes
    struct DigestHash {
        size_t operator()(const Digest& d) const { return static_cast<size_t>(d[0]); }
    };

    // Takes grouped rows out of their groups, keeping each group stored under a member that remains.
    void detach(const std::vector<int64_t>& ids);
    // A row whose stored vector is exactly `vector`, found in the inner index; nullopt if none.
    std::optional<int64_t> find_twin(const float* vector) const;
    void join(int64_t label, int64_t id);
    std::string encode_groups() const;
    void decode_groups(const unsigned char* data, size_t size, const std::string& name);

    std::unique_ptr<VectorIndex> inner_;
    VectorFetcher fetch_;
    // Groups of two or more rows, by label (a member's id; the inner index stores the vector under
    // it). Rows in no group stand alone under their own id.
    std::unordered_map<int64_t, std::vector<int64_t>> groups_;
    std::unordered_map<int64_t, int64_t> label_of_;  // grouped row -> its group's label
    size_t grouped_rows_ = 0;
    // Labels of the vectors added since the last removal, by digest: twins are found without a search
    // while a store is built. Vectors loaded from a file, or after a removal, are found by a search.
    std::unordered_map<Digest, int64_t, DigestHash> label_by_digest_;
    bool search_for_twins_ = false;
};

}  // namespace cbir
