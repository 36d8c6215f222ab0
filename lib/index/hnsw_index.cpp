#include "index/hnsw_index.h"

#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include <unistd.h>

#include <fmt/format.h>

#include "index/sq8_space.h"
#include "util/parallel_for.h"

namespace cbir {

// Wraps the graph's distance function while its level-0 records are in a mapped file: a record is
// checked (the chunks it lies in, then its links) before its first distance is returned. hnswlib
// computes a node's distance before it reads the node's links, deleted flag or label (searchKnn and
// searchBaseLayerST in 0.6.2, the version Debian ships), so no unchecked record steers a search.
class RecordGuard final : public hnswlib::SpaceInterface<float> {
public:
    RecordGuard(hnswlib::SpaceInterface<float>& inner, const MappedPayload& file, const char* records, size_t count,
                size_t record_size, size_t max_links, std::string name)
        : inner_function_(inner.get_dist_func()), inner_param_(inner.get_dist_func_param()), data_size_(inner.get_data_size()),
          file_(file), records_(records), end_(records + count * record_size), count_(count), record_size_(record_size),
          max_links_(max_links), name_(std::move(name)), checked_(new std::atomic<uint64_t>[count / 64 + 1]) {
        for (size_t i = 0; i < count / 64 + 1; ++i) checked_[i].store(0, std::memory_order_relaxed);
    }
    size_t get_data_size() override { return data_size_; }
    hnswlib::DISTFUNC<float> get_dist_func() override { return &distance; }
    void* get_dist_func_param() override { return this; }

    void check(const void* at) const {
        const char* p = static_cast<const char*>(at);
        if (p < records_ || p >= end_) return;  // a query, or a vector being added
        check_record(static_cast<size_t>(p - records_) / record_size_);
    }
    void check_record(size_t id) const {
        std::atomic<uint64_t>& word = checked_[id / 64];
        const uint64_t bit = uint64_t(1) << (id % 64);
        if (word.load(std::memory_order_acquire) & bit) return;
        const char* record = records_ + id * record_size_;
        file_.verify(record, record_size_);
        // Level-0 links: a count, then that many node numbers, each inside the graph.
        unsigned short links = 0;
        std::memcpy(&links, record, sizeof links);
        if (links > max_links_) throw IndexFileError(name_ + ": hnsw node has too many links");
        for (size_t j = 1; j <= links; ++j) {
            hnswlib::tableint target;
            std::memcpy(&target, record + j * sizeof target, sizeof target);
            if (target >= count_) throw IndexFileError(name_ + ": hnsw link points outside the graph");
        }
        word.fetch_or(bit, std::memory_order_acq_rel);
    }

private:
    static float distance(const void* a, const void* b, const void* param) {
        const auto* guard = static_cast<const RecordGuard*>(param);
        guard->check(a);
        guard->check(b);
        return guard->inner_function_(a, b, guard->inner_param_);
    }
    hnswlib::DISTFUNC<float> inner_function_;
    void* inner_param_;
    size_t data_size_;
    const MappedPayload& file_;
    const char* records_;
    const char* end_;
    size_t count_;
    size_t record_size_;
    size_t max_links_;
    std::string name_;
    std::unique_ptr<std::atomic<uint64_t>[]> checked_;
};

namespace {

using Graph = hnswlib::HierarchicalNSW<float>;

class Sq8Space final : public hnswlib::SpaceInterface<float> {
public:
    Sq8Space(const ScalarQuantizer& quantizer, Metric metric) : distance_(quantizer, metric) {}
    size_t get_data_size() override { return distance_.dimension; }
    hnswlib::DISTFUNC<float> get_dist_func() override { return distance_.function; }
    void* get_dist_func_param() override { return &distance_; }

private:
    Sq8Distance distance_;
};

std::unique_ptr<hnswlib::SpaceInterface<float>> make_space(Metric metric, int dimension, const ScalarQuantizer* quantizer) {
    if (quantizer) return std::make_unique<Sq8Space>(*quantizer, metric);
    if (metric == Metric::L2) return std::make_unique<hnswlib::L2Space>(dimension);
    return std::make_unique<hnswlib::InnerProductSpace>(dimension);  // cosine = ip on unit vectors
}

struct GraphFields {
    size_t offset_level0, count, size_per_element, label_offset, offset_data, max_m, max_m0, m, ef_construction;
    int max_level;
    hnswlib::tableint entry_point;
};

// hnswlib's saveIndex() header (0.6.2; the round-trip test pins it).
GraphFields read_fields(PayloadReader& in, const std::string& name) {
    GraphFields f{};
    f.offset_level0 = in.value<size_t>();
    in.value<size_t>();  // the saved capacity: we size the graph to its contents
    f.count = in.value<size_t>();
    f.size_per_element = in.value<size_t>();
    f.label_offset = in.value<size_t>();
    f.offset_data = in.value<size_t>();
    f.max_level = in.value<int>();
    f.entry_point = in.value<hnswlib::tableint>();
    f.max_m = in.value<size_t>();
    f.max_m0 = in.value<size_t>();
    f.m = in.value<size_t>();
    in.value<double>();  // mult, derived from M
    f.ef_construction = in.value<size_t>();
    if (f.m < 2 || f.m > 4096 || f.ef_construction > 1000000 || f.count > (size_t(1) << 40))
        throw IndexFileError(name + ": implausible hnsw parameters");
    // Each element's level-0 record is in the payload: a count it cannot hold is refused before the
    // graph allocates for it (libFuzzer: 90 bytes claimed 10 GB of locks and records).
    if (f.size_per_element == 0 || f.count > in.remaining() / f.size_per_element)
        throw IndexFileError(name + ": hnsw graph is truncated or damaged");
    if (f.count > 0 && (f.entry_point >= f.count || f.max_level < 0)) throw IndexFileError(name + ": hnsw entry point is damaged");
    return f;
}

}  // namespace

HnswIndex::HnswIndex(int dimension, Metric metric, const IndexSpec& spec)
    : dimension_(dimension), metric_(metric), spec_(spec) {
    if (!spec_.is_hnsw()) spec_.kind = IndexKind::Hnsw;
    if (spec_.kind == IndexKind::HnswSq8) quantizer_ = std::make_unique<ScalarQuantizer>(dimension);
    space_ = make_space(metric, dimension, quantizer_.get());
}

HnswIndex::HnswIndex(int dimension, Metric metric, const IndexSpec& spec, size_t capacity)
    : HnswIndex(dimension, metric, spec) {
    graph_ = std::make_unique<Graph>(space_.get(), std::max<size_t>(capacity, 16), spec.hnsw_m, spec.hnsw_ef_construction);
    graph_->setEf(1);  // see search()
}

HnswIndex::~HnswIndex() {
    if (graph_ && mapped_records_ && graph_->data_level0_memory_ == mapped_records_)
        graph_->data_level0_memory_ = nullptr;  // the file's, not hnswlib's to free
}

void HnswIndex::train(const float* vectors, size_t count) {
    if (!quantizer_) return;
    if (graph_->cur_element_count > 0) throw Error("an SQ8 index is trained before vectors are added");
    std::vector<float> prepared(vectors, vectors + count * static_cast<size_t>(dimension_));
    for (size_t i = 0; i < count; ++i) prepare_for_metric(metric_, &prepared[i * dimension_], static_cast<size_t>(dimension_));
    quantizer_->train(prepared.data(), count);
    trained_on_ = count;
    space_ = make_space(metric_, dimension_, quantizer_.get());
    graph_->fstdistfunc_ = space_->get_dist_func();
    graph_->dist_func_param_ = space_->get_dist_func_param();
}

size_t HnswIndex::size() const { return graph_->cur_element_count - graph_->num_deleted_; }

void HnswIndex::encode(const float* vector, std::vector<float>& prepared, std::vector<uint8_t>& code) const {
    prepared.assign(vector, vector + dimension_);
    prepare_for_metric(metric_, prepared.data(), prepared.size());
    if (!quantizer_) return;
    code.resize(static_cast<size_t>(dimension_));
    quantizer_->encode(prepared.data(), code.data());
}

void HnswIndex::add(int64_t id, const float* vector) {
    if (mapped_records_) own_records();
    std::vector<float> prepared;
    std::vector<uint8_t> code;
    encode(vector, prepared, code);
    if (graph_->cur_element_count >= graph_->max_elements_) {
        std::lock_guard<std::mutex> lock(resize_mutex_);
        if (graph_->cur_element_count >= graph_->max_elements_)
            graph_->resizeIndex(std::max<size_t>(2 * graph_->max_elements_, 1024));
    }
    graph_->addPoint(quantizer_ ? static_cast<const void*>(code.data()) : prepared.data(), static_cast<hnswlib::labeltype>(id));
}

void HnswIndex::add_batch(const int64_t* ids, const float* vectors, size_t count, bool) {
    if (mapped_records_) own_records();
    // Grown by doubling: a catch-up adds chunk after chunk, and each resize copies the whole graph.
    if (graph_->cur_element_count + count > graph_->max_elements_)
        reserve(std::max(graph_->cur_element_count + count, 2 * graph_->max_elements_));
    parallel_for(count, [&](size_t i) { add(ids[i], vectors + i * static_cast<size_t>(dimension_)); });
}

std::optional<std::string> HnswIndex::rebuild_reason(size_t catalogue_rows) const {
    constexpr double kMaxTombstoneShare = 0.1;
    const size_t nodes = graph_->cur_element_count;
    if (tombstones() > kMaxTombstoneShare * static_cast<double>(nodes))
        return fmt::format("{} deleted images are more than 10% of the HNSW graph", tombstones());
    constexpr size_t kRetrainGrowth = 10;
    if (quantizer_ && catalogue_rows > kRetrainGrowth * std::max<size_t>(trained_on_, 1) &&
        trained_on_ < IndexSpec::sq8_training_size(catalogue_rows))
        return fmt::format("{} vectors are more than {}x the {} the SQ8 quantizer was trained on", catalogue_rows,
                           kRetrainGrowth, trained_on_);
    return std::nullopt;
}

void HnswIndex::remove(const std::vector<int64_t>& ids) {
    if (ids.empty()) return;
    if (mapped_records_) own_records();
    for (int64_t id : ids) {
        auto found = graph_->label_lookup_.find(static_cast<hnswlib::labeltype>(id));
        if (found != graph_->label_lookup_.end() && !graph_->isMarkedDeleted(found->second))
            graph_->markDeletedInternal(found->second);
    }
}

size_t HnswIndex::tombstones() const { return graph_->num_deleted_; }

void HnswIndex::reserve(size_t capacity) {
    if (mapped_records_) own_records();
    std::lock_guard<std::mutex> lock(resize_mutex_);
    if (capacity > graph_->max_elements_) graph_->resizeIndex(capacity);
}

std::vector<Neighbor> HnswIndex::search(const float* query, const SearchParams& params) const {
    std::vector<float> prepared;
    std::vector<uint8_t> code;
    encode(query, prepared, code);
    const size_t k = std::min(static_cast<size_t>(std::max(params.k, 0)), size());
    if (k == 0) return {};
    // hnswlib keeps ef in the graph (shared state), and searches with max(ef, k) candidates. With
    // ef fixed at 1, asking for max(ef, k) results searches exactly as broadly, and the top k of them
    // are the answer: concurrent searches with different ef need no lock.
    const int ef = params.ef > 0 ? params.ef : spec_.hnsw_ef_search;
    const size_t breadth = std::max(static_cast<size_t>(std::max(ef, 1)), k);
    auto found = graph_->searchKnn(quantizer_ ? static_cast<const void*>(code.data()) : prepared.data(), breadth);
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

void HnswIndex::check_all_records() const {
    mapped_->verify_all();
    for (size_t i = 0; i < graph_->cur_element_count; ++i) guard_->check_record(i);
}

void HnswIndex::own_records() {
    check_all_records();
    const size_t count = graph_->cur_element_count;
    char* records = static_cast<char*>(std::malloc(std::max<size_t>(count, 1) * graph_->size_data_per_element_));
    if (!records) throw Error("out of memory loading the hnsw index");
    std::memcpy(records, mapped_records_, count * graph_->size_data_per_element_);
    graph_->data_level0_memory_ = records;
    mapped_records_ = nullptr;
    graph_->max_elements_ = std::max<size_t>(count, 1);
    std::vector<std::mutex>(graph_->max_elements_).swap(graph_->link_list_locks_);
    graph_->label_lookup_.reserve(count);
    graph_->num_deleted_ = 0;
    for (size_t i = 0; i < count; ++i) {
        const auto node = static_cast<hnswlib::tableint>(i);
        graph_->label_lookup_[graph_->getExternalLabel(node)] = node;
        if (graph_->isMarkedDeleted(node)) graph_->num_deleted_ += 1;
    }
    graph_->fstdistfunc_ = space_->get_dist_func();
    graph_->dist_func_param_ = space_->get_dist_func_param();
    guard_.reset();
    mapped_.reset();
}

void HnswIndex::write_payload(PayloadFile& out, IndexFileHeader& header) const {
    // A graph read in place is checked whole first: unchecked bytes are never written out as good.
    if (mapped_records_) check_all_records();
    if (!quantizer_) {
        graph_->saveIndex(out.proc_path());
    } else {  // the quantizer, then the graph (hnswlib writes only whole files)
        const std::string q = quantizer_->serialize();
        out.append(q.data(), q.size());
        PayloadFile graph;
        graph_->saveIndex(graph.proc_path());
        std::vector<char> block(1 << 20);
        for (off_t at = 0;;) {
            const ssize_t n = ::pread(graph.fd(), block.data(), block.size(), at);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw Error("cannot read the hnsw graph back");
            if (n == 0) break;
            out.append(block.data(), static_cast<size_t>(n));
            at += n;
        }
    }
    header.kind = index_kind_name(kind());
    header.dimension = static_cast<uint32_t>(dimension_);
    header.metric = metric_;
    header.count = graph_->cur_element_count;  // tombstones included: what the file holds
    header.params = {static_cast<uint32_t>(spec_.hnsw_m), static_cast<uint32_t>(spec_.hnsw_ef_construction),
                     static_cast<uint32_t>(graph_->num_deleted_), static_cast<uint32_t>(std::min<size_t>(trained_on_, UINT32_MAX))};
}

std::unique_ptr<HnswIndex> HnswIndex::from_payload(std::shared_ptr<const MappedPayload> payload, const IndexFileHeader& header,
                                                   const IndexSpec& search_defaults, const std::string& name) {
    const auto kind = parse_index_kind(header.kind);
    if (!kind || (*kind != IndexKind::Hnsw && *kind != IndexKind::HnswSq8))
        throw IndexFileError(name + ": holds a '" + header.kind + "' index, not hnsw");
    if (header.dimension == 0 || header.dimension > 65536) throw IndexFileError(name + ": implausible dimension");
    IndexSpec spec = search_defaults;
    spec.kind = *kind;
    spec.hnsw_m = static_cast<int>(header.params[0]);
    spec.hnsw_ef_construction = static_cast<int>(header.params[1]);
    std::unique_ptr<HnswIndex> index(new HnswIndex(static_cast<int>(header.dimension), header.metric, spec));
    PayloadReader in(payload->data(), payload->size(), name + ": hnsw graph", payload.get());
    if (index->quantizer_) {
        index->quantizer_->deserialize(in.bytes(ScalarQuantizer::serialized_size(index->dimension_)),
                                       ScalarQuantizer::serialized_size(index->dimension_), name);
        index->space_ = make_space(index->metric_, index->dimension_, index->quantizer_.get());
        index->trained_on_ = header.params[3];
    }
    const GraphFields f = read_fields(in, name);
    const char* records = reinterpret_cast<const char*>(in.skip(f.count * f.size_per_element));
    auto guard = std::make_unique<RecordGuard>(*index->space_, *payload, records, f.count, f.size_per_element, f.max_m0, name);
    // Built for one element, then pointed at the file's records: hnswlib allocates no copy of them,
    // and no lock per node until the graph changes (own_records).
    auto graph = std::make_unique<Graph>(guard.get(), 1, f.m, f.ef_construction);
    if (graph->size_data_per_element_ != f.size_per_element || graph->offsetLevel0_ != f.offset_level0 ||
        graph->label_offset_ != f.label_offset || graph->offsetData_ != f.offset_data || graph->maxM_ != f.max_m ||
        graph->maxM0_ != f.max_m0)
        throw IndexFileError(name + ": hnsw layout does not match its dimension and M");
    const size_t slots = std::max<size_t>(f.count, 1);
    graph->element_levels_.assign(slots, 0);
    char** link_lists = static_cast<char**>(std::realloc(graph->linkLists_, sizeof(char*) * slots));
    if (!link_lists) throw Error("out of memory loading the hnsw index");
    graph->linkLists_ = link_lists;
    graph->linkLists_[0] = nullptr;
    delete graph->visited_list_pool_;
    graph->visited_list_pool_ = nullptr;
    graph->visited_list_pool_ = new hnswlib::VisitedListPool(1, static_cast<int>(slots));
    // The upper levels (a few percent of the file) are read, checked and copied now.
    for (size_t i = 0; i < f.count; ++i) {
        const auto link_bytes = in.value<unsigned int>();
        if (link_bytes % graph->size_links_per_element_ != 0) throw IndexFileError(name + ": hnsw links are damaged");
        const int level = static_cast<int>(link_bytes / graph->size_links_per_element_);
        if (level > f.max_level) throw IndexFileError(name + ": hnsw node above the top level");
        graph->linkLists_[i] = nullptr;
        graph->element_levels_[i] = level;
        graph->cur_element_count = i + 1;  // the destructor frees exactly the link lists set so far
        if (link_bytes) {
            const unsigned char* links = in.bytes(link_bytes);
            graph->linkLists_[i] = static_cast<char*>(std::malloc(link_bytes));
            if (!graph->linkLists_[i]) {
                graph->element_levels_[i] = 0;
                throw Error("out of memory loading the hnsw index");
            }
            std::memcpy(graph->linkLists_[i], links, link_bytes);
        }
    }
    if (!in.at_end()) throw IndexFileError(name + ": hnsw graph has trailing bytes");
    // Upper-level neighbours must be inside the graph and reach that level, or a search would read
    // out of bounds.
    for (size_t i = 0; i < f.count; ++i) {
        for (int level = 1; level <= graph->element_levels_[i]; ++level) {
            unsigned int* links = graph->get_linklist(static_cast<hnswlib::tableint>(i), level);
            const unsigned short n = graph->getListCount(links);
            if (n > f.max_m) throw IndexFileError(name + ": hnsw node has too many links");
            for (unsigned short j = 1; j <= n; ++j)
                if (links[j] >= f.count || graph->element_levels_[links[j]] < level)
                    throw IndexFileError(name + ": hnsw link points outside the graph");
        }
    }
    if (f.count > 0 && graph->element_levels_[f.entry_point] != f.max_level)
        throw IndexFileError(name + ": hnsw entry point is damaged");
    if (header.count != f.count)
        throw IndexFileError(name + ": header says " + std::to_string(header.count) + " vectors, graph holds " +
                             std::to_string(f.count));
    if (header.version >= 3 && header.params[2] > f.count) throw IndexFileError(name + ": hnsw tombstone count is damaged");
    graph->maxlevel_ = f.count ? f.max_level : -1;
    graph->enterpoint_node_ = f.count ? f.entry_point : static_cast<hnswlib::tableint>(-1);
    graph->max_elements_ = slots;
    graph->setEf(1);  // see search()
    // Nothing throws past this point: the records are the file's from here on.
    std::free(graph->data_level0_memory_);
    graph->data_level0_memory_ = const_cast<char*>(records);
    index->mapped_records_ = graph->data_level0_memory_;
    index->graph_ = std::move(graph);
    index->guard_ = std::move(guard);
    index->mapped_ = std::move(payload);
    if (header.version >= 3) {
        // Tombstones are counted into the header: counting them here would read every record.
        index->graph_->num_deleted_ = header.params[2];
        index->mapped_->advise_random(records, f.count * f.size_per_element);
    } else {
        index->own_records();  // older files were checked whole at open and counted no tombstones
    }
    return index;
}

}  // namespace cbir
