#include "search/evaluate.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "index/flat_index.h"
#include "store/file_identity.h"
#include "store/derived_index.h"
#include "util/error.h"
#include "util/parallel_for.h"

namespace cbir {
namespace {

// A class: the label file's second column, shown by its name (the third column, when there is one:
// Corel-1K's labels.tsv is file, class_id, class_name).
struct Label {
    std::string key;
    std::string name;
};

std::unordered_map<std::string, Label> read_labels(const std::filesystem::path& file, const std::filesystem::path& root) {
    std::ifstream in(file);
    if (!in) throw Error(file.string() + ": cannot read labels");
    std::unordered_map<std::string, Label> labels;
    std::string line;
    bool first = true;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        std::istringstream fields(line);
        std::string name, label, label_name;
        std::getline(fields, name, '\t');
        std::getline(fields, label, '\t');
        std::getline(fields, label_name, '\t');
        if (std::exchange(first, false) && name == "file") continue;  // header
        if (name.empty() || name[0] == '#' || label.empty()) continue;
        labels[catalogue_key(root / name)] = {label, label_name.empty() ? label : label_name};
    }
    if (labels.empty()) throw Error(file.string() + ": no labels (expected lines of file<TAB>class[<TAB>name])");
    return labels;
}

struct QueryScores {
    double p1 = 0, p5 = 0, p10 = 0, ap = 0, recall = 0;
    double index_p1 = 0, index_p5 = 0, index_p10 = 0;
};

// The store's rows with their classes; the labelled ones are the queries.
struct LabelledRows {
    std::vector<int64_t> ids;
    std::vector<float> vectors;  // as the model produced them
    std::vector<int> class_of;   // -1: unlabelled
    std::vector<std::string> class_names;
    std::vector<size_t> class_size;
    std::vector<size_t> queries;  // rows with a class
    size_t unlabelled = 0;        // rows without: left out of every ranking, exact and the index's
    std::unordered_map<int64_t, size_t> row_of;
    const float* vector(size_t row, int dimension) const { return &vectors[row * static_cast<size_t>(dimension)]; }
};

LabelledRows read_labelled_rows(Store& store, const EvalOptions& options) {
    std::unordered_map<std::string, Label> labels;
    if (options.labels)
        labels = read_labels(*options.labels, options.root.value_or(std::filesystem::absolute(*options.labels).parent_path()));
    LabelledRows rows;
    store.catalogue().all_vectors(store.settings().dimension, rows.ids, rows.vectors);
    const auto paths = store.catalogue().paths_of(rows.ids);
    rows.class_of.assign(rows.ids.size(), -1);
    std::map<std::string, int> class_ids;
    for (size_t i = 0; i < rows.ids.size(); ++i) {
        rows.row_of[rows.ids[i]] = i;
        Label label;
        if (options.labels) {
            auto found = labels.find(paths[i]);
            if (found == labels.end()) {
                ++rows.unlabelled;
                continue;
            }
            label = found->second;
        } else {
            label.key = label.name = std::filesystem::path(paths[i]).parent_path().filename().string();
        }
        auto [it, inserted] = class_ids.emplace(label.key, static_cast<int>(rows.class_names.size()));
        if (inserted) rows.class_names.push_back(label.name);
        rows.class_of[i] = it->second;
        rows.queries.push_back(i);
    }
    if (rows.queries.size() < 2) throw Error("fewer than two labelled images in the store; check --labels and --root");
    rows.class_size.assign(rows.class_names.size(), 0);
    for (size_t q : rows.queries) ++rows.class_size[rows.class_of[q]];
    return rows;
}

// Precision at 1, 5 and 10 of a ranking fed hit by hit. With fewer than k hits, P@k still divides by k
// (trec_eval's definition).
class PrecisionAtK {
public:
    void add(bool relevant) {
        ++seen_;
        if (!relevant) return;
        for (size_t i = 0; i < kCutoffs.size(); ++i)
            if (seen_ <= kCutoffs[i]) ++relevant_within_[i];
    }
    double at(size_t cutoff_index) const { return double(relevant_within_[cutoff_index]) / double(kCutoffs[cutoff_index]); }

private:
    static constexpr std::array<size_t, 3> kCutoffs{1, 5, 10};
    std::array<size_t, 3> relevant_within_{};
    size_t seen_ = 0;
};

// Precision at 1/5/10 and average precision of the exact ranking of every other labelled image.
void score_exact_ranking(const LabelledRows& rows, size_t q, const FlatIndex& labelled, int dimension, QueryScores& out) {
    SearchParams all;
    all.k = static_cast<int>(rows.queries.size());
    size_t rank = 0, relevant = 0;
    double precision_sum = 0;
    PrecisionAtK precision;
    for (const auto& n : labelled.search(rows.vector(q, dimension), all)) {
        if (n.id == rows.ids[q]) continue;
        ++rank;
        const bool is_relevant = rows.class_of[rows.row_of.at(n.id)] == rows.class_of[q];
        precision.add(is_relevant);
        if (is_relevant) {
            ++relevant;
            precision_sum += double(relevant) / double(rank);
        }
    }
    out.p1 = precision.at(0);
    out.p5 = precision.at(1);
    out.p10 = precision.at(2);
    const size_t relevant_total = rows.class_size[rows.class_of[q]] - 1;
    out.ap = relevant_total ? precision_sum / double(relevant_total) : 0;
}

// The store's index: its recall@k against exact search over the whole store (the query left out),
// and the precisions of its own top 10.
void score_index(const LabelledRows& rows, size_t q, const FlatIndex& everything, const VectorIndex& index,
                 const EvalOptions& options, int dimension, QueryScores& out) {
    const int k = std::max(1, options.recall_k);
    const float* query = rows.vector(q, dimension);
    std::set<int64_t> truth;
    for (const auto& n : everything.search(query, {k + 1, 0, 0}))
        if (n.id != rows.ids[q] && truth.size() < static_cast<size_t>(k)) truth.insert(n.id);
    // The precisions count labelled hits only, as the exact ranking does (an unlabelled image is
    // neither relevant nor irrelevant); the index is asked for enough to reach 10 of them.
    SearchParams params;
    params.k = static_cast<int>(std::max<size_t>(k, 10 + rows.unlabelled) + 1);
    params.ef = options.ef;
    params.nprobe = options.nprobe;  // 0: the store's default
    size_t found = 0, taken = 0;
    PrecisionAtK precision;
    for (const auto& n : index.search(query, params)) {
        if (n.id == rows.ids[q]) continue;
        ++taken;
        if (taken <= truth.size()) found += truth.count(n.id);
        const auto row = rows.row_of.find(n.id);
        if (row == rows.row_of.end() || rows.class_of[row->second] < 0) continue;
        precision.add(rows.class_of[row->second] == rows.class_of[q]);
    }
    out.index_p1 = precision.at(0);
    out.index_p5 = precision.at(1);
    out.index_p10 = precision.at(2);
    out.recall = truth.empty() ? 1.0 : double(found) / double(truth.size());
}

EvalReport summarise(const LabelledRows& rows, const std::vector<QueryScores>& scores) {
    EvalReport report;
    report.store_images = rows.ids.size();
    report.queries = rows.queries.size();
    report.unlabelled = rows.unlabelled;
    report.ann_recall = 0;
    std::vector<double> class_ap(rows.class_names.size(), 0);
    for (size_t qi = 0; qi < rows.queries.size(); ++qi) {
        report.precision_at_1 += scores[qi].p1;
        report.precision_at_5 += scores[qi].p5;
        report.precision_at_10 += scores[qi].p10;
        report.mean_average_precision += scores[qi].ap;
        report.ann_recall += scores[qi].recall;
        report.index_precision_at_1 += scores[qi].index_p1;
        report.index_precision_at_5 += scores[qi].index_p5;
        report.index_precision_at_10 += scores[qi].index_p10;
        class_ap[rows.class_of[rows.queries[qi]]] += scores[qi].ap;
    }
    const double n = double(rows.queries.size());
    for (double* mean : {&report.precision_at_1, &report.precision_at_5, &report.precision_at_10,
                         &report.mean_average_precision, &report.ann_recall, &report.index_precision_at_1,
                         &report.index_precision_at_5, &report.index_precision_at_10})
        *mean /= n;
    for (size_t c = 0; c < rows.class_names.size(); ++c)
        report.classes.push_back({rows.class_names[c], rows.class_size[c], class_ap[c] / double(rows.class_size[c])});
    std::sort(report.classes.begin(), report.classes.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return report;
}

}  // namespace

EvalReport evaluate_store(Store& store, const EvalOptions& options) {
    const StoreSettings& s = store.settings();
    const LabelledRows rows = read_labelled_rows(store, options);
    // One class makes every neighbour relevant: P@k and mAP of 1 that measure nothing.
    if (rows.class_names.size() == 1)
        throw Error(fmt::format("{}: every labelled image is in one class ('{}'), so every score would be 1; give "
                                "--labels FILE, or a --root whose subfolders are the classes",
                                store.dir().string(), rows.class_names.front()));
    FlatIndex labelled(s.dimension, s.metric), everything(s.dimension, s.metric);
    for (size_t i = 0; i < rows.ids.size(); ++i) {
        everything.add(rows.ids[i], rows.vector(i, s.dimension));
        if (rows.class_of[i] >= 0) labelled.add(rows.ids[i], rows.vector(i, s.dimension));
    }
    auto index = open_search_index(store, IndexWriteBack::IfChanged, IndexFileHolding::Mapped);
    std::vector<QueryScores> scores(rows.queries.size());
    parallel_for(rows.queries.size(), [&](size_t qi) {
        score_exact_ranking(rows, rows.queries[qi], labelled, s.dimension, scores[qi]);
        score_index(rows, rows.queries[qi], everything, *index, options, s.dimension, scores[qi]);
    });
    EvalReport report = summarise(rows, scores);
    report.metric = metric_name(s.metric);
    report.index_kind = index_kind_name(index->kind());
    report.recall_k = std::max(1, options.recall_k);
    return report;
}

}  // namespace cbir
