#pragma once
// Retrieval quality of a store on a labelled set (`cbir eval`): every labelled image queries all the
// others (itself left out); an image is relevant when it has the query's class. Reports
// precision@1/5/10 and mAP over the exact ranking in the store's metric, and the recall@k of the
// store's ANN index against exact search.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "store/store.h"

namespace cbir {

struct EvalOptions {
    // TSV of `file<TAB>class[<TAB>name]` (a header line starting with "file" is skipped; the name,
    // when given, is how --per-class shows the class); files are
    // relative to `root` (default: the TSV's folder). Without it, an image's class is the name of
    // its folder.
    std::optional<std::filesystem::path> labels;
    std::optional<std::filesystem::path> root;
    int recall_k = 10;
    int ef = 0;      // HNSW search breadth for the recall measurement; 0 = the store's default
    int nprobe = 0;  // IVF lists visited; 0 = the store's default
};

struct ClassScore {
    std::string name;
    size_t images = 0;
    double average_precision = 0;  // mean over the class's queries
};

struct EvalReport {
    size_t store_images = 0;
    size_t queries = 0;  // labelled images in the store
    size_t unlabelled = 0;  // images in the store without a label: in no ranking
    std::string metric;
    std::string index_kind;
    double precision_at_1 = 0, precision_at_5 = 0, precision_at_10 = 0, mean_average_precision = 0;
    int recall_k = 10;
    double ann_recall = 1.0;  // of the store's index against exact search
    // The same precisions from the index's own top-k (what `cbir query` returns); equal to the exact
    // ones for a flat index.
    double index_precision_at_1 = 0, index_precision_at_5 = 0, index_precision_at_10 = 0;
    std::vector<ClassScore> classes;
};

EvalReport evaluate_store(Store& store, const EvalOptions& options);

}  // namespace cbir
