#include "index/hnsw_index.h"

#include <hnswlib/hnswlib.h>

#include <algorithm>

namespace cbir {
namespace {

std::unique_ptr<hnswlib::SpaceInterface<float>> make_space(Metric metric, int dimension) {
    if (metric == Metric::L2) return std::make_unique<hnswlib::L2Space>(dimension);
    return std::make_unique<hnswlib::InnerProductSpace>(dimension);  // cosine = ip on unit vectors
}

}  // namespace

HnswIndex::HnswIndex(int dimension, Metric metric, const HnswParams& params)
    : dimension_(dimension), metric_(metric), params_(params), space_(make_space(metric, dimension)) {}

HnswIndex::HnswIndex(int dimension, Metric metric, const HnswParams& params, size_t capacity)
    : HnswIndex(dimension, metric, params) {
    graph_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(space_.get(), std::max<size_t>(capacity, 16),
                                                               params.m, params.ef_construction);
}

HnswIndex::~HnswIndex() = default;

size_t HnswIndex::size() const { return graph_->cur_element_count; }

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

void HnswIndex::reserve(size_t capacity) {
    std::lock_guard<std::mutex> lock(resize_mutex_);
    if (capacity > graph_->max_elements_) graph_->resizeIndex(capacity);
}

std::vector<Neighbor> HnswIndex::search(const float* query, const SearchParams& params) const {
    std::vector<float> q(query, query + dimension_);
    prepare_for_metric(metric_, q.data(), q.size());
    const size_t k = std::min(static_cast<size_t>(std::max(params.k, 0)), size());
    if (k == 0) return {};
    std::priority_queue<std::pair<float, hnswlib::labeltype>> found;
    {
        std::lock_guard<std::mutex> lock(search_mutex_);
        const int ef = params.ef > 0 ? params.ef : params_.ef_search;
        graph_->setEf(static_cast<size_t>(std::max<int>(ef, static_cast<int>(k))));
        found = graph_->searchKnn(q.data(), k);
    }
    std::vector<Neighbor> out(found.size());
    for (size_t i = out.size(); i-- > 0; found.pop())
        out[i] = {static_cast<int64_t>(found.top().second), found.top().first};
    // Equal distances in id order, as the flat index orders them.
    std::stable_sort(out.begin(), out.end(), [](const Neighbor& a, const Neighbor& b) {
        return a.distance < b.distance || (a.distance == b.distance && a.id < b.id);
    });
    return out;
}

void HnswIndex::save(const std::filesystem::path& path, uint64_t catalogue_generation) const {
    PayloadFile payload;
    graph_->saveIndex(payload.proc_path());
    IndexFileHeader header;
    header.kind = kind();
    header.dimension = static_cast<uint32_t>(dimension_);
    header.metric = metric_;
    header.count = size();
    header.catalogue_generation = catalogue_generation;
    header.params = {static_cast<uint32_t>(params_.m), static_cast<uint32_t>(params_.ef_construction), 0, 0};
    write_index_file(path, header, payload);
}

std::unique_ptr<HnswIndex> HnswIndex::load(const std::filesystem::path& path, int ef_search, IndexFileHeader& header) {
    PayloadFile payload = read_index_file(path, header);
    if (header.kind != "hnsw") throw IndexFileError(path.string() + ": holds a '" + header.kind + "' index, not hnsw");
    if (header.dimension == 0 || header.dimension > 65536) throw IndexFileError(path.string() + ": implausible dimension");
    HnswParams params;
    params.m = static_cast<int>(header.params[0]);
    params.ef_construction = static_cast<int>(header.params[1]);
    params.ef_search = ef_search;
    std::unique_ptr<HnswIndex> index(new HnswIndex(static_cast<int>(header.dimension), header.metric, params));
    try {
        index->graph_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(index->space_.get(), payload.proc_path());
    } catch (const std::exception& e) {
        throw IndexFileError(path.string() + ": hnswlib could not read the index: " + e.what());
    }
    if (index->size() != header.count)
        throw IndexFileError(path.string() + ": header says " + std::to_string(header.count) + " vectors, graph holds " +
                             std::to_string(index->size()));
    return index;
}

}  // namespace cbir
