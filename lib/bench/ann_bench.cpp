#include "bench/ann_bench.h"

#include <faiss/IndexFlat.h>
#include <omp.h>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include <malloc.h>
#include <unistd.h>

#include "bench/synthetic.h"
#include "index/grouped_index.h"
#include "index/index_factory.h"
#include "index/reranked_index.h"
#include "util/log.h"

namespace cbir {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double resident_mib() {
    std::ifstream statm("/proc/self/statm");
    size_t pages = 0, resident = 0;
    statm >> pages >> resident;
    return resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

// Exact top-10 of every query with FAISS's BLAS-backed flat search (ids are row + 1, as in the index).
std::vector<std::set<int64_t>> ground_truth(const AnnBenchOptions& o) {
    std::vector<float> base = o.base, queries = o.query_vectors;
    const size_t n = base.size() / o.dimension, q = queries.size() / o.dimension;
    for (size_t i = 0; i < n; ++i) prepare_for_metric(o.metric, &base[i * o.dimension], o.dimension);
    for (size_t i = 0; i < q; ++i) prepare_for_metric(o.metric, &queries[i * o.dimension], o.dimension);
    std::unique_ptr<faiss::IndexFlat> flat;
    if (o.metric == Metric::L2) flat = std::make_unique<faiss::IndexFlatL2>(o.dimension);
    else flat = std::make_unique<faiss::IndexFlatIP>(o.dimension);
    flat->add(static_cast<faiss::Index::idx_t>(n), base.data());
    std::vector<float> distances(q * 10);
    std::vector<faiss::Index::idx_t> labels(q * 10);
    flat->search(static_cast<faiss::Index::idx_t>(q), queries.data(), 10, distances.data(), labels.data());
    std::vector<std::set<int64_t>> truth(q);
    for (size_t i = 0; i < q; ++i)
        for (int j = 0; j < 10; ++j) truth[i].insert(labels[i * 10 + j] + 1);
    return truth;
}

// The synthetic rows as the store's index build reads its catalogue: chunks of ids 1..n and vectors.
RowChunks synthetic_rows(const AnnBenchOptions& o) {
    return [&o](const ChunkVisitor& visit) {
        constexpr size_t kChunk = 65536;
        const size_t n = o.base.size() / o.dimension;
        std::vector<int64_t> ids;
        for (size_t i = 0; i < n; i += kChunk) {
            const size_t count = std::min(kChunk, n - i);
            ids.resize(count);
            for (size_t j = 0; j < count; ++j) ids[j] = static_cast<int64_t>(i + j + 1);
            visit(ids.data(), &o.base[i * o.dimension], count);
        }
    };
}

}  // namespace

void bench_ann(AnnBenchOptions o, const std::function<void(const AnnBenchRow&)>& on_row) {
    if (o.base.empty()) o.base = synthetic_features(o.count, o.dimension, 1);
    if (o.query_vectors.empty()) o.query_vectors = synthetic_features(o.queries, o.dimension, 2);
    const size_t n = o.base.size() / o.dimension, q = o.query_vectors.size() / o.dimension;
    log_notice("computing exact neighbours of " + std::to_string(q) + " queries among " + std::to_string(n));
    const auto truth = ground_truth(o);
    std::filesystem::create_directories(o.work_dir);
    for (const IndexSpec& spec : o.specs) {
        log_notice("building " + spec.describe());
        const int d = o.dimension;
        const auto& base = o.base;
        const VectorFetcher fetch = [&base, d](const auto& ids, auto& vectors) {
            vectors.resize(ids.size() * d);
            for (size_t i = 0; i < ids.size(); ++i)
                std::copy(&base[(ids[i] - 1) * d], &base[ids[i] * d], &vectors[i * d]);
        };
        IndexSpec chosen = spec;
        if (chosen.is_ivf() && chosen.ivf_nlist <= 0) chosen.ivf_nlist = choose_ivf_nlist(n);
        const auto started = Clock::now();
        auto built = build_index(chosen, o.dimension, o.metric, n, synthetic_rows(o), fetch);  // the store's path
        AnnBenchRow row;
        row.index = chosen.describe();
        row.count = n;
        row.build_seconds = seconds_since(started);
        const auto file = o.work_dir / ("bench." + index_kind_name(spec.kind));
        built->save(file, CatalogueState{});
        ::malloc_trim(0);  // hand freed heap back, so the RSS growth below is the loaded index's
        row.file_bytes = std::filesystem::file_size(file);
        const double rss_before = resident_mib();
        const auto load_started = Clock::now();
        IndexFileHeader header;
        IndexSpec search_defaults;
        std::unique_ptr<VectorIndex> index = GroupedIndex::load(file, search_defaults, fetch, header, IndexFileHolding::Mapped);
        row.load_seconds = seconds_since(load_started);
        row.resident_mib = resident_mib() - rss_before;
        // Removing the name leaves the mapped file readable (the inode lives while it is mapped).
        std::filesystem::remove(file);
        if (spec.reranks()) index = std::make_unique<RerankedIndex>(std::move(index), fetch, spec.rerank_factor());
        omp_set_num_threads(1);  // queries/s on one thread, FAISS included
        {
            SearchParams first;
            first.k = 10;
            const auto first_started = Clock::now();
            index->search(&o.query_vectors[0], first);
            row.first_query_seconds = seconds_since(first_started);
        }
        const bool hnsw = spec.is_hnsw();
        for (int knob : hnsw ? o.ef_values : o.nprobe_values) {
            SearchParams params;
            params.k = 10;
            (hnsw ? params.ef : params.nprobe) = knob;
            size_t found = 0;
            const auto search_started = Clock::now();
            for (size_t i = 0; i < q; ++i)
                for (const auto& hit : index->search(&o.query_vectors[i * o.dimension], params)) found += truth[i].count(hit.id);
            const double elapsed = seconds_since(search_started);
            row.knob = (hnsw ? "ef=" : "nprobe=") + std::to_string(knob);
            row.queries_per_second = q / elapsed;
            row.recall_at_10 = double(found) / double(q * 10);
            row.resident_after_queries_mib = resident_mib() - rss_before;
            on_row(row);
        }
        omp_set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    }
}

}  // namespace cbir
