#include "index/ivf_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/invlists/InvertedListsIOHook.h>

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <typeinfo>

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

// Inverted lists read in place from the mapped index file (FAISS's ArrayInvertedLists layout: each
// list's codes, then its ids). A list is checked (its chunk checksums) the first time a search
// visits it. Ids that the file places off an 8-byte boundary are copied, list by list, on first use.
class MappedInvertedLists final : public faiss::ReadOnlyInvertedLists {
public:
    MappedInvertedLists(const MappedPayload& file, size_t nlist, size_t code_size)
        : ReadOnlyInvertedLists(nlist, code_size), file_(file), sizes_(nlist), codes_(nlist), ids_(nlist),
          ready_(new std::atomic<const idx_t*>[nlist]), copies_(nlist) {
        for (size_t i = 0; i < nlist; ++i) ready_[i].store(nullptr, std::memory_order_relaxed);
    }
    void set(size_t list, size_t size, const unsigned char* codes, const unsigned char* ids) {
        sizes_[list] = size;
        codes_[list] = codes;
        ids_[list] = ids;
    }
    size_t list_size(size_t list) const override { return sizes_[list]; }
    const uint8_t* get_codes(size_t list) const override { return ready(list) ? codes_[list] : nullptr; }
    const idx_t* get_ids(size_t list) const override { return ready(list); }

private:
    const idx_t* ready(size_t list) const {
        if (const idx_t* ids = ready_[list].load(std::memory_order_acquire)) return ids;
        const size_t n = sizes_[list];
        file_.verify(codes_[list], n * code_size);
        file_.verify(ids_[list], n * sizeof(idx_t));
        const idx_t* ids = reinterpret_cast<const idx_t*>(ids_[list]);
        if (reinterpret_cast<uintptr_t>(ids) % alignof(idx_t) != 0 || n == 0) {
            std::lock_guard<std::mutex> lock(copy_mutex_);
            if (!copies_[list]) {
                copies_[list].reset(new idx_t[std::max<size_t>(n, 1)]);
                std::memcpy(copies_[list].get(), ids_[list], n * sizeof(idx_t));
            }
            ids = copies_[list].get();
        }
        ready_[list].store(ids, std::memory_order_release);
        return ids;
    }
    const MappedPayload& file_;
    std::vector<size_t> sizes_;
    std::vector<const unsigned char*> codes_, ids_;
    std::unique_ptr<std::atomic<const idx_t*>[]> ready_;
    mutable std::mutex copy_mutex_;
    mutable std::vector<std::unique_ptr<idx_t[]>> copies_;
};

constexpr char kMappedListsKey[] = "ilcb";
int mapped_lists_flags() {
    const uint32_t key = uint32_t(uint8_t(kMappedListsKey[0])) | uint32_t(uint8_t(kMappedListsKey[1])) << 8 |
                         uint32_t(uint8_t(kMappedListsKey[2])) << 16 | uint32_t(uint8_t(kMappedListsKey[3])) << 24;
    return static_cast<int>((key & 0xffff0000u) | faiss::IO_FLAG_SKIP_IVF_DATA | faiss::IO_FLAG_SKIP_PRECOMPUTE_TABLE);
}

// FAISS's hook for inverted lists of its own layout that are not read into memory: it has read the
// list sizes; the lists start at the reader's position.
struct MappedListsHook final : faiss::InvertedListsIOHook {
    MappedListsHook() : InvertedListsIOHook(kMappedListsKey, typeid(MappedInvertedLists).name()) {}
    void write(const faiss::InvertedLists*, faiss::IOWriter*) const override {
        FAISS_THROW_MSG("mapped inverted lists are written as the file they came from");
    }
    faiss::InvertedLists* read(faiss::IOReader*, int) const override { FAISS_THROW_MSG("not a stored list kind"); }
    faiss::InvertedLists* read_ArrayInvertedLists(faiss::IOReader* f, int, size_t nlist, size_t code_size,
                                                  const std::vector<size_t>& sizes) const override;
};

void register_mapped_lists_hook() {
    static const bool done = [] {
        faiss::InvertedListsIOHook::add_callback(new MappedListsHook);  // FAISS owns it
        return true;
    }();
    (void)done;
}

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

faiss::InvertedLists* MappedListsHook::read_ArrayInvertedLists(faiss::IOReader* f, int, size_t nlist, size_t code_size,
                                                               const std::vector<size_t>& sizes) const {
    auto* reader = dynamic_cast<SpanReader*>(f);
    FAISS_THROW_IF_NOT_MSG(reader, "mapped inverted lists need a mapped payload");
    FAISS_THROW_IF_NOT_MSG(code_size > 0 && code_size < (size_t(1) << 20), "implausible code size");
    auto lists = std::make_unique<MappedInvertedLists>(reader->file, nlist, code_size);
    size_t at = reader->position;
    for (size_t list = 0; list < nlist; ++list) {
        const size_t n = sizes[list];
        if (n == 0) continue;
        FAISS_THROW_IF_NOT_MSG(n <= (reader->size - at) / (code_size + sizeof(faiss::Index::idx_t)), "inverted lists are truncated");
        const unsigned char* codes = reader->data + at;
        at += n * code_size;
        lists->set(list, n, codes, reader->data + at);
        at += n * sizeof(faiss::Index::idx_t);
    }
    reader->position = at;
    return lists.release();
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

// Checks every list and copies them into memory: before anything changes them.
void IvfIndex::own_lists() {
    if (!mapped_) return;
    mapped_->verify_all();
    const faiss::InvertedLists* mapped = ivf_->invlists;
    auto* lists = new faiss::ArrayInvertedLists(mapped->nlist, mapped->code_size);
    for (size_t list = 0; list < mapped->nlist; ++list) {
        const size_t n = mapped->list_size(list);
        if (n) lists->add_entries(list, n, mapped->get_ids(list), mapped->get_codes(list));
    }
    ivf_->replace_invlists(lists, true);
    mapped_.reset();
}

void IvfIndex::add_batch(const int64_t* ids, const float* vectors, size_t count, bool replace) {
    if (count == 0) return;
    own_lists();
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
    own_lists();
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
    try {
        index_->search(1, q.data(), k, distances.data(), labels.data(), &search_params);
    } catch (const faiss::FaissException& e) {
        // A damaged list of a mapped file: FAISS passes the check's error on as its own.
        if (mapped_) throw IndexFileError(e.what());
        throw Error(std::string("IVF search failed: ") + e.what());
    }
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
    if (mapped_) {
        // Unchanged since it was read: the file's own bytes, every one checked first (never written
        // out as good unchecked), with no copy of the lists (searches may run meanwhile).
        mapped_->verify_all();
        out.append(mapped_->data(), mapped_->size());
    } else {
        faiss::VectorIOWriter writer;
        faiss::write_index(index_.get(), &writer);
        out.append(writer.data.data(), writer.data.size());
    }
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
    register_mapped_lists_hook();
    SpanReader reader(*payload);
    std::unique_ptr<faiss::Index> index;
    try {
        index.reset(faiss::read_index(&reader, mapped_lists_flags()));
    } catch (const faiss::FaissException& e) {
        throw IndexFileError(name + ": FAISS could not read the index: " + e.what());
    } catch (const std::length_error& e) {  // a size FAISS believed (found by fuzzing the PQ reader)
        throw IndexFileError(name + ": FAISS could not read the index: " + e.what());
    }
    if (reader.position != reader.size) throw IndexFileError(name + ": FAISS index has trailing bytes");
    IndexSpec spec = search_defaults;
    spec.kind = *kind;
    spec.ivf_nlist = static_cast<int>(header.params[0]);
    spec.pq_m = static_cast<int>(header.params[1]);
    spec.pq_bits = static_cast<int>(header.params[2]);
    if (index->d != static_cast<int>(header.dimension) || static_cast<uint64_t>(index->ntotal) != header.count)
        throw IndexFileError(name + ": FAISS index does not match its header");
    // FAISS asserts (aborts) on some inconsistent layouts at search time: they are refused here.
    const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index.get());
    if (!ivf || !ivf->quantizer || !ivf->invlists || ivf->quantizer->d != index->d ||
        static_cast<size_t>(ivf->quantizer->ntotal) != ivf->nlist || ivf->invlists->nlist != ivf->nlist ||
        ivf->nlist != header.params[0] || ivf->invlists->code_size != ivf->code_size ||
        ivf->direct_map.type != faiss::DirectMap::NoMap)  // cbir never makes one
        throw IndexFileError(name + ": FAISS index layout is damaged");
    if (const auto* pq = dynamic_cast<const faiss::IndexIVFPQ*>(ivf)) {
        if (*kind != IndexKind::IvfPq || pq->pq.M != header.params[1] || pq->pq.nbits != header.params[2] || pq->pq.nbits < 4 ||
            pq->pq.nbits > 12 || pq->pq.d != static_cast<size_t>(index->d) || pq->pq.code_size != ivf->code_size)
            throw IndexFileError(name + ": FAISS PQ layout is damaged");
    } else if (*kind != IndexKind::Ivf || !dynamic_cast<const faiss::IndexIVFFlat*>(ivf) ||
               ivf->code_size != sizeof(float) * static_cast<size_t>(index->d)) {
        throw IndexFileError(name + ": FAISS IVF-Flat layout is damaged");
    }
    std::unique_ptr<IvfIndex> out(new IvfIndex(static_cast<int>(header.dimension), header.metric, spec, std::move(index)));
    if (dynamic_cast<const MappedInvertedLists*>(out->ivf_->invlists)) out->mapped_ = std::move(payload);
    out->ivf_->nprobe = static_cast<size_t>(std::max(spec.ivf_nprobe, 1));
    out->trained_on_ = header.params[3];
    return out;
}

}  // namespace cbir
