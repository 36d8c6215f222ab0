#include "index/ivf_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#include <dlfcn.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace cbir {
namespace {

faiss::MetricType faiss_metric(Metric metric) {
    return metric == Metric::L2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
}

// A FAISS reader over a memory-mapped payload: no copy of the file into a buffer first; every byte
// is verified before FAISS sees it.
struct SpanReader : faiss::IOReader {
    const MappedPayload& file;
    const unsigned char* data;
    size_t size;
    size_t position = 0;
    explicit SpanReader(const MappedPayload& f) : file(f), data(f.data()), size(f.size()) { name = "cbir index payload"; }
    size_t operator()(void* ptr, size_t item_size, size_t items) override {
        if (item_size == 0 || items == 0) return 0;
        const size_t available = (size - position) / item_size;
        const size_t n = std::min(items, available);
        file.verify(data + position, n * item_size);
        std::memcpy(ptr, data + position, n * item_size);
        position += n * item_size;
        return n;
    }
};

// FAISS parallelises with OpenMP itself; a multi-threaded BLAS underneath each OpenMP thread
// oversubscribes the cores (measured: IVF-PQ training 35 s against 15 s with one BLAS thread).
// OpenBLAS is asked at run time, so a reference BLAS works too.
void use_single_threaded_blas() {
    static const bool done = [] {
        using SetThreads = void (*)(int);
        if (auto set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(1);
        return true;
    }();
    (void)done;
}

std::vector<float> prepared(Metric metric, const float* vectors, size_t count, int dimension) {
    std::vector<float> out(vectors, vectors + count * dimension);
    for (size_t i = 0; i < count; ++i) prepare_for_metric(metric, &out[i * dimension], dimension);
    return out;
}

}  // namespace

IvfIndex::IvfIndex(int dimension, Metric metric, const IndexSpec& spec, std::unique_ptr<faiss::Index> index)
    : dimension_(dimension), metric_(metric), spec_(spec), index_(std::move(index)) {
    use_single_threaded_blas();
    ivf_ = dynamic_cast<faiss::IndexIVF*>(index_.get());
    if (!ivf_) throw IndexFileError("not an IVF index");
    skip_precomputed_tables();
}

IvfIndex::IvfIndex(int dimension, Metric metric, const IndexSpec& spec) : dimension_(dimension), metric_(metric), spec_(spec) {
    use_single_threaded_blas();
    if (spec.ivf_nlist <= 0) throw Error("IVF index needs nlist");
    auto* quantizer = metric == Metric::L2 ? static_cast<faiss::IndexFlat*>(new faiss::IndexFlatL2(dimension))
                                           : static_cast<faiss::IndexFlat*>(new faiss::IndexFlatIP(dimension));
    faiss::IndexIVF* ivf;
    try {
        if (spec.kind == IndexKind::IvfPq)
            ivf = new faiss::IndexIVFPQ(quantizer, dimension, spec.ivf_nlist, spec.pq_m, spec.pq_bits, faiss_metric(metric));
        else
            ivf = new faiss::IndexIVFFlat(quantizer, dimension, spec.ivf_nlist, faiss_metric(metric));
    } catch (const faiss::FaissException& e) {
        delete quantizer;
        throw Error(std::string("cannot create ") + spec.describe() + ": " + e.what());
    }
    ivf->own_fields = true;  // the IVF index deletes its quantizer
    ivf->nprobe = static_cast<size_t>(std::max(spec.ivf_nprobe, 1));
    index_.reset(ivf);
    ivf_ = ivf;
    skip_precomputed_tables();
}

IvfIndex::~IvfIndex() = default;

size_t IvfIndex::size() const { return static_cast<size_t>(index_->ntotal); }
bool IvfIndex::trained() const { return index_->is_trained; }
int IvfIndex::nlist() const { return static_cast<int>(ivf_->nlist); }

void IvfIndex::train(const float* vectors, size_t count) {
    const auto data = prepared(metric_, vectors, count, dimension_);
    try {
        index_->train(static_cast<faiss::Index::idx_t>(count), data.data());
    } catch (const faiss::FaissException& e) {
        throw Error(std::string("training ") + spec_.describe() + " failed: " + e.what());
    }
    trained_on_ = count;
    skip_precomputed_tables();  // training computed them
}

void IvfIndex::skip_precomputed_tables() {
    // IVF-PQ's precomputed distance tables take nlist x m x 256 floats (134 MB at IVF2048,PQ64),
    // more than the codes of a million vectors; searching without them costs a little time instead.
    if (auto* pq = dynamic_cast<faiss::IndexIVFPQ*>(index_.get())) {
        pq->use_precomputed_table = -1;
        pq->precomputed_table.resize(0);  // frees the table
    }
}

void IvfIndex::add_batch(const int64_t* ids, const float* vectors, size_t count, bool replace) {
    if (count == 0) return;
    const auto data = prepared(metric_, vectors, count, dimension_);
    std::vector<faiss::Index::idx_t> labels(ids, ids + count);
    // Replace, not duplicate: ids that are already in the lists go first. That scans every list
    // once per batch; an id-to-position hash table would avoid it but costs ~50 MB per million
    // vectors, as much as IVF-PQ's codes.
    if (replace && index_->ntotal > 0) {
        faiss::IDSelectorBatch existing(static_cast<size_t>(count), labels.data());
        index_->remove_ids(existing);
    }
    index_->add_with_ids(static_cast<faiss::Index::idx_t>(count), data.data(), labels.data());
}

void IvfIndex::remove(const std::vector<int64_t>& ids) {
    if (ids.empty() || index_->ntotal == 0) return;
    std::vector<faiss::Index::idx_t> labels(ids.begin(), ids.end());
    faiss::IDSelectorBatch selector(labels.size(), labels.data());
    index_->remove_ids(selector);
}

std::vector<Neighbor> IvfIndex::search(const float* query, const SearchParams& params) const {
    const auto q = prepared(metric_, query, 1, dimension_);
    const int k = std::max(0, std::min<int>(params.k, static_cast<int>(size())));
    if (k == 0) return {};
    std::vector<float> distances(k);
    std::vector<faiss::Index::idx_t> labels(k);
    faiss::SearchParametersIVF search_params;
    search_params.nprobe = static_cast<size_t>(params.nprobe > 0 ? params.nprobe : std::max(spec_.ivf_nprobe, 1));
    index_->search(1, q.data(), k, distances.data(), labels.data(), &search_params);
    std::vector<Neighbor> out;
    for (int i = 0; i < k; ++i) {
        if (labels[i] < 0) continue;  // fewer than k in the lists probed
        // FAISS reports inner products as similarities; cbir's convention is 1 - similarity.
        const float d = metric_ == Metric::L2 ? distances[i] : 1.0f - distances[i];
        out.push_back({static_cast<int64_t>(labels[i]), d});
    }
    std::stable_sort(out.begin(), out.end(), [](const Neighbor& a, const Neighbor& b) {
        return a.distance < b.distance || (a.distance == b.distance && a.id < b.id);
    });
    return out;
}

std::optional<std::string> IvfIndex::rebuild_reason(size_t catalogue_rows) const {
    constexpr size_t kRetrainGrowth = 10;
    if (catalogue_rows > kRetrainGrowth * std::max<size_t>(trained_on_, 1))
        return fmt::format("{} vectors are more than {}x the {} the IVF index was trained on", catalogue_rows,
                           kRetrainGrowth, trained_on_);
    return std::nullopt;
}

void IvfIndex::write_payload(PayloadFile& out, IndexFileHeader& header) const {
    faiss::VectorIOWriter writer;
    faiss::write_index(index_.get(), &writer);
    out.append(writer.data.data(), writer.data.size());
    header.kind = index_kind_name(spec_.kind);
    header.dimension = static_cast<uint32_t>(dimension_);
    header.metric = metric_;
    header.count = size();
    header.params = {static_cast<uint32_t>(ivf_->nlist), static_cast<uint32_t>(spec_.pq_m),
                     static_cast<uint32_t>(spec_.pq_bits), static_cast<uint32_t>(std::min<size_t>(trained_on_, UINT32_MAX))};
}

std::unique_ptr<IvfIndex> IvfIndex::from_payload(std::shared_ptr<const MappedPayload> payload, const IndexFileHeader& header,
                                                 const IndexSpec& search_defaults, const std::string& name) {
    const auto kind = parse_index_kind(header.kind);
    if (kind != IndexKind::Ivf && kind != IndexKind::IvfPq)
        throw IndexFileError(name + ": holds a '" + header.kind + "' index, not ivf");
    SpanReader reader(*payload);
    std::unique_ptr<faiss::Index> index;
    try {
        index.reset(faiss::read_index(&reader));
    } catch (const faiss::FaissException& e) {
        throw IndexFileError(name + ": FAISS could not read the index: " + e.what());
    }
    IndexSpec spec = search_defaults;
    spec.kind = *kind;
    spec.ivf_nlist = static_cast<int>(header.params[0]);
    spec.pq_m = static_cast<int>(header.params[1]);
    spec.pq_bits = static_cast<int>(header.params[2]);
    if (index->d != static_cast<int>(header.dimension) || static_cast<uint64_t>(index->ntotal) != header.count)
        throw IndexFileError(name + ": FAISS index does not match its header");
    std::unique_ptr<IvfIndex> out(new IvfIndex(static_cast<int>(header.dimension), header.metric, spec, std::move(index)));
    out->ivf_->nprobe = static_cast<size_t>(std::max(spec.ivf_nprobe, 1));
    out->trained_on_ = header.params[3];
    return out;
}

}  // namespace cbir
