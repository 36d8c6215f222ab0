#pragma once
// `cbir bench ann`: each index kind on the same vectors: build time, size on disk, open time, first
// query, resident memory after opening and after the queries, single-thread queries/s and recall@10 against exact search, over a
// sweep of the search knob (ef for HNSW, nprobe for IVF).
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "index/index_spec.h"
#include "index/metric.h"

namespace cbir {

struct AnnBenchOptions {
    size_t count = 100000;
    int dimension = 512;
    size_t queries = 200;
    Metric metric = Metric::L2;
    std::vector<IndexSpec> specs;
    std::vector<int> ef_values{16, 32, 64, 128, 256};
    std::vector<int> nprobe_values{4, 8, 16, 32, 64};
    std::filesystem::path work_dir;  // index files are written here
    std::vector<float> base;         // optional real vectors (count x dimension); synthetic otherwise
    std::vector<float> query_vectors;
};

struct AnnBenchRow {
    std::string index;
    std::string knob;  // "ef=64", "nprobe=16"
    size_t count = 0;
    double build_seconds = 0;
    uint64_t file_bytes = 0;
    double load_seconds = 0;  // opening the index file (mapped: the records are read as touched)
    double first_query_seconds = 0;  // the first query after opening (page cache warm: the file was just written)
    double resident_mib = 0;  // growth of the process's RSS when the index file was opened
    double resident_after_queries_mib = 0;  // ... and after this row's queries (the pages they touched)
    double queries_per_second = 0;
    double recall_at_10 = 0;
};

void bench_ann(AnnBenchOptions options, const std::function<void(const AnnBenchRow&)>& on_row);

}  // namespace cbir
