#include "bench/ann_bench.h"

#include <faiss/IndexFlat.h>
#include <omp.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include <malloc.h>
#include <unistd.h>

#include "bench/synthetic.h"
#include "index/grouped_index.h"
#include "index/hnsw_index.h"
#include "index/ivf_index.h"
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

std::unique_ptr<VectorIndex> build(const AnnBenchOptions& o, const IndexSpec& spec) {
    const size_t n = o.base.size() / o.dimension;
    if (spec.kind == "hnsw") {
        HnswParams params;
        params.m = spec.hnsw_m;
        params.ef_construction = spec.hnsw_ef_construction;
        auto index = std::make_unique<HnswIndex>(o.dimension, o.metric, params, n);
        std::atomic<size_t> next{0};
        std::vector<std::thread> workers;
        for (unsigned t = 0; t < std::max(1u, std::thread::hardware_concurrency()); ++t)
            workers.emplace_back([&] {
                for (size_t i; (i = next.fetch_add(1)) < n;) index->add(static_cast<int64_t>(i + 1), &o.base[i * o.dimension]);
            });
        for (auto& w : workers) w.join();
        return index;
    }
    IndexSpec s = spec;
    if (s.ivf_nlist <= 0) s.ivf_nlist = choose_ivf_nlist(n);
    auto index = std::make_unique<IvfIndex>(o.dimension, o.metric, s);
    size_t sample = std::min(n, static_cast<size_t>(s.ivf_nlist) * 64);
    if (s.kind == "ivfpq") sample = std::min(n, std::max(sample, (size_t(1) << s.pq_bits) * 64));
    const size_t stride = std::max<size_t>(1, n / sample);
    std::vector<float> training;
    for (size_t i = 0; i < n && training.size() < sample * o.dimension; i += stride)
        training.insert(training.end(), &o.base[i * o.dimension], &o.base[(i + 1) * o.dimension]);
    index->train(training.data(), training.size() / o.dimension);
    std::vector<int64_t> ids(n);
    for (size_t i = 0; i < n; ++i) ids[i] = static_cast<int64_t>(i + 1);
    constexpr size_t kChunk = 65536;
    for (size_t i = 0; i < n; i += kChunk)
        index->add_batch(&ids[i], &o.base[i * o.dimension], std::min(kChunk, n - i), false);
    return index;
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
        const auto started = Clock::now();
        auto built = build(o, spec);
        AnnBenchRow row;
        row.index = spec.describe();
        row.count = n;
        row.build_seconds = seconds_since(started);
        const auto file = o.work_dir / ("bench." + spec.kind);
        if (auto* v = dynamic_cast<IvfIndex*>(built.get())) row.index = v->spec().describe();
        const int d = o.dimension;
        const auto& base = o.base;
        const VectorFetcher fetch = [&base, d](const auto& ids, auto& vectors) {
            vectors.resize(ids.size() * d);
            for (size_t i = 0; i < ids.size(); ++i)
                std::copy(&base[(ids[i] - 1) * d], &base[ids[i] * d], &vectors[i * d]);
        };
        GroupedIndex(std::move(built), fetch).save(file, CatalogueState{});
        ::malloc_trim(0);  // hand freed heap back, so the RSS growth below is the loaded index's
        row.file_bytes = std::filesystem::file_size(file);
        const double rss_before = resident_mib();
        const auto load_started = Clock::now();
        IndexFileHeader header;
        std::unique_ptr<VectorIndex> index = GroupedIndex::load(file, 64, fetch, header);
        row.load_seconds = seconds_since(load_started);
        row.resident_mib = resident_mib() - rss_before;
        std::filesystem::remove(file);
        if (spec.kind == "ivfpq") index = std::make_unique<RerankedIndex>(std::move(index), fetch);
        omp_set_num_threads(1);  // queries/s on one thread, FAISS included
        for (int knob : spec.kind == "hnsw" ? o.ef_values : o.nprobe_values) {
            SearchParams params;
            params.k = 10;
            (spec.kind == "hnsw" ? params.ef : params.nprobe) = knob;
            size_t found = 0;
            const auto search_started = Clock::now();
            for (size_t i = 0; i < q; ++i)
                for (const auto& hit : index->search(&o.query_vectors[i * o.dimension], params)) found += truth[i].count(hit.id);
            const double elapsed = seconds_since(search_started);
            row.knob = (spec.kind == "hnsw" ? "ef=" : "nprobe=") + std::to_string(knob);
            row.queries_per_second = q / elapsed;
            row.recall_at_10 = double(found) / double(q * 10);
            on_row(row);
        }
        omp_set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    }
}

}  // namespace cbir
