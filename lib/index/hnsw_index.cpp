#include "index/hnsw_index.h"

#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "util/parallel_for.h"

namespace cbir {
namespace {

std::unique_ptr<hnswlib::SpaceInterface<float>> make_space(Metric metric, int dimension) {
    if (metric == Metric::L2) return std::make_unique<hnswlib::L2Space>(dimension);
    return std::make_unique<hnswlib::InnerProductSpace>(dimension);  // cosine = ip on unit vectors
}

// Reads hnswlib's saveIndex() layout (0.6.2, the version Debian ships; the round-trip test pins it)
// from memory straight into a graph built with the same parameters. hnswlib's own loadIndex reads
// through an ifstream, seeks once per element and checks little: 0.44 s for 100k vectors here,
// against a few memcpys. Every read is bounds-checked (PayloadReader).
std::unique_ptr<hnswlib::HierarchicalNSW<float>> read_graph(const MappedPayload& payload, hnswlib::SpaceInterface<float>* space,
                                                            const std::string& name) {
    PayloadReader in(payload.data(), payload.size(), name + ": hnsw graph");
    const auto offset_level0 = in.value<size_t>();
    in.value<size_t>();  // the saved capacity: we size the graph to its contents
    const auto count = in.value<size_t>();
    const auto size_per_element = in.value<size_t>();
    const auto label_offset = in.value<size_t>();
    const auto offset_data = in.value<size_t>();
    const auto max_level = in.value<int>();
    const auto entry_point = in.value<hnswlib::tableint>();
    const auto max_m = in.value<size_t>();
    const auto max_m0 = in.value<size_t>();
    const auto m = in.value<size_t>();
    in.value<double>();  // mult, derived from M
    const auto ef_construction = in.value<size_t>();
    if (m < 2 || m > 4096 || ef_construction > 1000000 || count > (size_t(1) << 40))
        throw IndexFileError(name + ": implausible hnsw parameters");
    // Each element's level-0 record is in the payload: a count it cannot hold is refused before the
    // graph allocates for it (libFuzzer: 90 bytes claimed 10 GB of locks and records).
    if (size_per_element == 0 || count > in.remaining() / size_per_element)
        throw IndexFileError(name + ": hnsw graph is truncated or damaged");
    auto graph = std::make_unique<hnswlib::HierarchicalNSW<float>>(space, std::max<size_t>(count, 1), m, ef_construction);
    if (graph->size_data_per_element_ != size_per_element || graph->offsetLevel0_ != offset_level0 ||
        graph->label_offset_ != label_offset || graph->offsetData_ != offset_data || graph->maxM_ != max_m ||
        graph->maxM0_ != max_m0)
        throw IndexFileError(name + ": hnsw layout does not match its dimension and M");
    if (count > 0 && (entry_point >= count || max_level < 0)) throw IndexFileError(name + ": hnsw entry point is damaged");
    std::memcpy(graph->data_level0_memory_, in.bytes(count * size_per_element), count * size_per_element);
    graph->label_lookup_.reserve(count);
    for (size_t i = 0; i < count; ++i) {
        const auto link_bytes = in.value<unsigned int>();
        if (link_bytes % graph->size_links_per_element_ != 0) throw IndexFileError(name + ": hnsw links are damaged");
        const int level = static_cast<int>(link_bytes / graph->size_links_per_element_);
        if (level > max_level) throw IndexFileError(name + ": hnsw node above the top level");
        graph->element_levels_[i] = level;
        graph->linkLists_[i] = nullptr;
        if (link_bytes) {
            const unsigned char* links = in.bytes(link_bytes);
            graph->linkLists_[i] = static_cast<char*>(std::malloc(link_bytes));
            if (!graph->linkLists_[i]) throw Error("out of memory loading the hnsw index");
            std::memcpy(graph->linkLists_[i], links, link_bytes);
        }
        graph->label_lookup_[graph->getExternalLabel(static_cast<hnswlib::tableint>(i))] = static_cast<hnswlib::tableint>(i);
        if (graph->isMarkedDeleted(static_cast<hnswlib::tableint>(i))) graph->num_deleted_ += 1;
        graph->cur_element_count = i + 1;  // the destructor frees exactly the link lists set so far
    }
    if (!in.at_end()) throw IndexFileError(name + ": hnsw graph has trailing bytes");
    // Neighbour ids must point inside the graph, or a search would read out of bounds.
    for (size_t i = 0; i < count; ++i) {
        for (int level = 0; level <= graph->element_levels_[i]; ++level) {
            unsigned int* links = graph->get_linklist_at_level(static_cast<hnswlib::tableint>(i), level);
            const unsigned short n = graph->getListCount(links);
            if (n > (level == 0 ? max_m0 : max_m)) throw IndexFileError(name + ": hnsw node has too many links");
            for (unsigned short j = 1; j <= n; ++j)
                if (links[j] >= count) throw IndexFileError(name + ": hnsw link points outside the graph");
        }
    }
    graph->maxlevel_ = max_level;
    graph->enterpoint_node_ = count ? entry_point : static_cast<hnswlib::tableint>(-1);
    return graph;
}

}  // namespace

HnswIndex::HnswIndex(int dimension, Metric metric, const IndexSpec& spec)
    : dimension_(dimension), metric_(metric), spec_(spec), space_(make_space(metric, dimension)) {
    spec_.kind = IndexKind::Hnsw;
}

HnswIndex::HnswIndex(int dimension, Metric metric, const IndexSpec& spec, size_t capacity)
    : HnswIndex(dimension, metric, spec) {
    graph_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(space_.get(), std::max<size_t>(capacity, 16),
                                                               spec.hnsw_m, spec.hnsw_ef_construction);
    graph_->setEf(1);  // see search()
}

HnswIndex::~HnswIndex() = default;

size_t HnswIndex::size() const { return graph_->cur_element_count - graph_->num_deleted_; }

void HnswIndex::add(int64_t id, const float* vector) {
    std::vector<float> prepared(vector, vector + dimension_);
    prepare_for_metric(metric_, prepared.data(), prepared.size());
    if (graph_->cur_element_count >= graph_->max_elements_) {
        std::lock_guard<std::mutex> lock(resize_mutex_);
        if (graph_->cur_element_count >= graph_->max_elements_)
            graph_->resizeIndex(std::max<size_t>(2 * graph_->max_elements_, 1024));
    }
    graph_->addPoint(prepared.data(), static_cast<hnswlib::labeltype>(id));
}

void HnswIndex::add_batch(const int64_t* ids, const float* vectors, size_t count, bool) {
    // Grown by doubling: a catch-up adds chunk after chunk, and each resize copies the whole graph.
    if (graph_->cur_element_count + count > graph_->max_elements_)
        reserve(std::max(graph_->cur_element_count + count, 2 * graph_->max_elements_));
    parallel_for(count, [&](size_t i) { add(ids[i], vectors + i * static_cast<size_t>(dimension_)); });
}

std::optional<std::string> HnswIndex::rebuild_reason(size_t) const {
    constexpr double kMaxTombstoneShare = 0.1;
    const size_t nodes = graph_->cur_element_count;
    if (tombstones() > kMaxTombstoneShare * static_cast<double>(nodes))
        return fmt::format("{} deleted images are more than 10% of the HNSW graph", tombstones());
    return std::nullopt;
}

void HnswIndex::remove(const std::vector<int64_t>& ids) {
    for (int64_t id : ids) {
        auto found = graph_->label_lookup_.find(static_cast<hnswlib::labeltype>(id));
        if (found != graph_->label_lookup_.end() && !graph_->isMarkedDeleted(found->second))
            graph_->markDeletedInternal(found->second);
    }
}

size_t HnswIndex::tombstones() const { return graph_->num_deleted_; }

void HnswIndex::reserve(size_t capacity) {
    std::lock_guard<std::mutex> lock(resize_mutex_);
    if (capacity > graph_->max_elements_) graph_->resizeIndex(capacity);
}

std::vector<Neighbor> HnswIndex::search(const float* query, const SearchParams& params) const {
    std::vector<float> q(query, query + dimension_);
    prepare_for_metric(metric_, q.data(), q.size());
    const size_t k = std::min(static_cast<size_t>(std::max(params.k, 0)), size());
    if (k == 0) return {};
    // hnswlib keeps ef in the graph (shared state), and searches with max(ef, k) candidates. With
    // ef fixed at 1, asking for max(ef, k) results searches exactly as broadly, and the top k of them
    // are the answer: concurrent searches with different ef need no lock.
    const int ef = params.ef > 0 ? params.ef : spec_.hnsw_ef_search;
    const size_t breadth = std::max(static_cast<size_t>(std::max(ef, 1)), k);
    auto found = graph_->searchKnn(q.data(), breadth);
    while (found.size() > k) found.pop();
    std::vector<Neighbor> out(found.size());
    for (size_t i = out.size(); i-- > 0; found.pop())
        out[i] = {static_cast<int64_t>(found.top().second), found.top().first};
    // Equal distances in id order, as the flat index orders them.
    std::stable_sort(out.begin(), out.end(), [](const Neighbor& a, const Neighbor& b) {
        return a.distance < b.distance || (a.distance == b.distance && a.id < b.id);
    });
    return out;
}

void HnswIndex::write_payload(PayloadFile& out, IndexFileHeader& header) const {
    graph_->saveIndex(out.proc_path());
    header.kind = index_kind_name(kind());
    header.dimension = static_cast<uint32_t>(dimension_);
    header.metric = metric_;
    header.count = graph_->cur_element_count;  // tombstones included: what the file holds
    header.params = {static_cast<uint32_t>(spec_.hnsw_m), static_cast<uint32_t>(spec_.hnsw_ef_construction), 0, 0};
}

std::unique_ptr<HnswIndex> HnswIndex::from_payload(const MappedPayload& payload, const IndexFileHeader& header,
                                                   const IndexSpec& search_defaults, const std::string& name) {
    if (parse_index_kind(header.kind) != IndexKind::Hnsw) throw IndexFileError(name + ": holds a '" + header.kind + "' index, not hnsw");
    if (header.dimension == 0 || header.dimension > 65536) throw IndexFileError(name + ": implausible dimension");
    IndexSpec spec = search_defaults;
    spec.hnsw_m = static_cast<int>(header.params[0]);
    spec.hnsw_ef_construction = static_cast<int>(header.params[1]);
    std::unique_ptr<HnswIndex> index(new HnswIndex(static_cast<int>(header.dimension), header.metric, spec));
    index->graph_ = read_graph(payload, index->space_.get(), name);
    index->graph_->setEf(1);  // see search()
    if (index->graph_->cur_element_count != header.count)
        throw IndexFileError(name + ": header says " + std::to_string(header.count) + " vectors, graph holds " +
                             std::to_string(index->size()));
    return index;
}

}  // namespace cbir
