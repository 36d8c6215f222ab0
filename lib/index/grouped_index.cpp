#include "index/grouped_index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "index/hnsw_index.h"
#include "index/ivf_index.h"
#include "util/hash.h"
#include "util/parallel_for.h"

namespace cbir {
namespace {

bool same_bytes(const float* a, const float* b, int dimension) {
    return std::memcmp(a, b, static_cast<size_t>(dimension) * sizeof(float)) == 0;
}

template <typename T> void put(std::string& out, T value) {
    out.append(reinterpret_cast<const char*>(&value), sizeof value);
}


}  // namespace

GroupedIndex::GroupedIndex(std::unique_ptr<VectorIndex> inner, VectorFetcher fetch)
    : inner_(std::move(inner)), fetch_(std::move(fetch)) {}

std::optional<int64_t> GroupedIndex::find_twin(const float* vector) const {
    SearchParams params;
    params.k = 1;
    const auto hits = inner_->search(vector, params);
    if (hits.empty() || !(hits[0].distance < 1e-3f)) return std::nullopt;
    std::vector<float> stored;
    fetch_({hits[0].id}, stored);
    if (stored.size() == static_cast<size_t>(dimension()) && same_bytes(stored.data(), vector, dimension()))
        return hits[0].id;
    return std::nullopt;
}

void GroupedIndex::join(int64_t label, int64_t id) {
    auto& members = groups_[label];
    if (members.empty()) {  // the label stood alone until now
        members.push_back(label);
        label_of_[label] = label;
        ++grouped_rows_;
    }
    members.insert(std::upper_bound(members.begin(), members.end(), id), id);
    label_of_[id] = label;
    ++grouped_rows_;
}

void GroupedIndex::add_batch(const int64_t* ids, const float* vectors, size_t count, bool replace) {
    const int d = dimension();
    if (replace) detach(std::vector<int64_t>(ids, ids + count));
    // Digests, and twins the inner index already holds, on all cores: searches of it run in parallel.
    std::vector<Digest> digests(count);
    std::vector<std::optional<int64_t>> searched(count);
    parallel_for(count, [&](size_t i) {
        const float* v = vectors + i * static_cast<size_t>(d);
        digests[i] = xxh3_128(v, static_cast<size_t>(d) * sizeof(float));
        if (search_for_twins_ && !label_by_digest_.count(digests[i])) searched[i] = find_twin(v);
    });
    std::vector<int64_t> alone_ids;
    std::vector<float> alone_vectors;
    std::vector<int64_t> now_grouped;  // replaced rows that had stood alone and now join a group
    for (size_t i = 0; i < count; ++i) {
        const float* v = vectors + i * static_cast<size_t>(d);
        const Digest& digest = digests[i];
        std::optional<int64_t> twin;
        if (auto found = label_by_digest_.find(digest); found != label_by_digest_.end()) {
            twin = found->second;
            // While the catalogue changes under a loaded index, an old entry may name a row whose
            // vector has changed or gone since: the catalogue settles it.
            if (replace && *twin != ids[i]) {
                std::vector<float> stored;
                fetch_({*twin}, stored);
                if (stored.size() != static_cast<size_t>(d) || !same_bytes(stored.data(), v, d)) twin.reset();
            }
        }
        if (!twin) twin = searched[i];
        if (twin && *twin != ids[i]) {
            auto grouped = label_of_.find(*twin);
            join(grouped == label_of_.end() ? *twin : grouped->second, ids[i]);
            if (replace) now_grouped.push_back(ids[i]);
        } else {
            alone_ids.push_back(ids[i]);
            alone_vectors.insert(alone_vectors.end(), v, v + d);
            label_by_digest_[digest] = ids[i];
        }
    }
    if (!now_grouped.empty()) inner_->remove(now_grouped);  // their old vectors, stored alone
    if (!alone_ids.empty()) inner_->add_batch(alone_ids.data(), alone_vectors.data(), alone_ids.size(), replace);
}

void GroupedIndex::remove(const std::vector<int64_t>& ids) {
    std::vector<int64_t> alone;
    for (int64_t id : ids)
        if (!label_of_.count(id)) alone.push_back(id);
    detach(ids);
    if (!alone.empty()) inner_->remove(alone);
}

// Takes grouped rows out of their groups; then each touched group is stored again under a member
// that remains (or dropped when none does), once all the rows have left.
void GroupedIndex::detach(const std::vector<int64_t>& ids) {
    std::set<int64_t> touched;
    for (int64_t id : ids) {
        auto found = label_of_.find(id);
        if (found == label_of_.end()) continue;
        const int64_t label = found->second;
        auto& members = groups_[label];
        members.erase(std::lower_bound(members.begin(), members.end(), id));
        label_of_.erase(found);
        --grouped_rows_;
        touched.insert(label);
    }
    for (int64_t label : touched) {
        std::vector<int64_t> members = std::move(groups_[label]);
        groups_.erase(label);
        const bool label_remains = std::binary_search(members.begin(), members.end(), label);
        if (members.size() == 1) {  // the last one stands alone again
            label_of_.erase(members[0]);
            --grouped_rows_;
        }
        if (members.empty() || label_remains) {
            if (members.empty()) inner_->remove({label});
            else if (members.size() > 1) groups_[label] = std::move(members);
            continue;
        }
        // The label row left: store the group's vector under a remaining member instead.
        std::vector<float> vector;
        fetch_({members[0]}, vector);
        inner_->remove({label});
        if (vector.size() != static_cast<size_t>(dimension()) || std::isnan(vector[0])) {
            for (int64_t m : members) label_of_.erase(m);  // gone from the catalogue too: nothing to store
            if (members.size() > 1) grouped_rows_ -= members.size();
            continue;
        }
        const int64_t new_label = members[0];
        inner_->add(new_label, vector.data());
        if (members.size() > 1) {
            for (int64_t m : members) label_of_[m] = new_label;
            groups_[new_label] = std::move(members);
        }
    }
}

std::vector<Neighbor> GroupedIndex::search(const float* query, const SearchParams& params) const {
    auto hits = inner_->search(query, params);
    if (groups_.empty()) return hits;
    std::vector<Neighbor> out;
    for (const auto& hit : hits) {
        auto group = groups_.find(hit.id);
        if (group == groups_.end()) {
            out.push_back(hit);
            continue;
        }
        for (int64_t member : group->second) out.push_back({member, hit.distance});
    }
    std::sort(out.begin(), out.end(), [](const Neighbor& a, const Neighbor& b) {
        return a.distance < b.distance || (a.distance == b.distance && a.id < b.id);
    });
    if (out.size() > static_cast<size_t>(std::max(params.k, 0))) out.resize(static_cast<size_t>(std::max(params.k, 0)));
    return out;
}

std::string GroupedIndex::encode_groups() const {
    std::string out;
    if (groups_.empty()) return out;
    put<uint64_t>(out, groups_.size());
    for (const auto& [label, members] : groups_) {
        put<int64_t>(out, label);
        put<uint64_t>(out, members.size());
        for (int64_t m : members) put<int64_t>(out, m);
    }
    return out;
}

void GroupedIndex::decode_groups(const unsigned char* data, size_t size, const std::string& name) {
    if (size == 0) return;
    PayloadReader in(data, size, name + ": groups of identical vectors");
    const auto count = in.value<uint64_t>();
    if (count > in.remaining() / 32) throw IndexFileError(name + ": implausible number of groups of identical vectors");
    for (uint64_t g = 0; g < count; ++g) {
        const auto label = in.value<int64_t>();
        const auto n = in.value<uint64_t>();
        if (n < 2 || n > in.remaining() / sizeof(int64_t)) throw IndexFileError(name + ": damaged group of identical vectors");
        std::vector<int64_t> members(n);
        for (auto& m : members) {
            m = in.value<int64_t>();
            if (!label_of_.emplace(m, label).second) throw IndexFileError(name + ": a row is in two groups");
        }
        if (!std::is_sorted(members.begin(), members.end()) || !std::binary_search(members.begin(), members.end(), label) ||
            std::adjacent_find(members.begin(), members.end()) != members.end())
            throw IndexFileError(name + ": damaged group of identical vectors");
        grouped_rows_ += members.size();
        if (!groups_.emplace(label, std::move(members)).second) throw IndexFileError(name + ": a group is stored twice");
    }
    if (in.remaining() != 0) throw IndexFileError(name + ": trailing bytes after the groups of identical vectors");
}

std::unique_ptr<GroupedIndex> GroupedIndex::load(const std::filesystem::path& path, const IndexSpec& search_defaults,
                                                 VectorFetcher fetch, IndexFileHeader& header,
                                                 IndexFileHolding holding) {
    const auto payload = open_index_file(path, header, holding);
    const std::string name = path.string();
    std::unique_ptr<VectorIndex> inner;
    const auto kind = parse_index_kind(header.kind);
    if (kind == IndexKind::Hnsw || kind == IndexKind::HnswSq8)
        inner = HnswIndex::from_payload(payload, header, search_defaults, name);
    else if (kind == IndexKind::Ivf || kind == IndexKind::IvfPq)
        inner = IvfIndex::from_payload(payload, header, search_defaults, name);
    else
        throw IndexFileError(name + ": unknown index kind '" + header.kind + "'");
    auto index = std::make_unique<GroupedIndex>(std::move(inner), std::move(fetch));
    payload->verify(payload->extension(), payload->extension_size());
    index->decode_groups(payload->extension(), payload->extension_size(), name);
    index->search_for_twins_ = index->inner_->size() > 0;
    return index;
}

void GroupedIndex::save(const std::filesystem::path& path, const CatalogueState& built_from) const {
    PayloadFile payload;
    IndexFileHeader header;
    inner_->write_payload(payload, header);
    header.built_from = built_from;
    write_index_file(path, header, payload, encode_groups());
}

}  // namespace cbir
