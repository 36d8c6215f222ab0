#include "search/evaluate.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <utility>

#include "store/catalogue_key.h"
#include "store/derived_index.h"
#include "util/error.h"

namespace cbir {
namespace {

std::unordered_map<std::string, std::string> read_labels(const std::filesystem::path& file, const std::filesystem::path& root) {
    std::ifstream in(file);
    if (!in) throw Error(file.string() + ": cannot read labels");
    std::unordered_map<std::string, std::string> labels;
    std::string line;
    bool first = true;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        std::istringstream fields(line);
        std::string name, label;
        std::getline(fields, name, '\t');
        std::getline(fields, label, '\t');
        if (std::exchange(first, false) && name == "file") continue;  // header
        if (name.empty() || name[0] == '#' || label.empty()) continue;
        labels[catalogue_key(root / name)] = label;
    }
    if (labels.empty()) throw Error(file.string() + ": no labels (expected lines of file<TAB>class)");
    return labels;
}

struct QueryScores {
    double p1 = 0, p5 = 0, p10 = 0, ap = 0, recall = 0;
    double index_p1 = 0, index_p5 = 0, index_p10 = 0;
};

}  // namespace

EvalReport evaluate_store(Store& store, const EvalOptions& options) {
    const StoreSettings& s = store.settings();
    const int dimension = s.dimension;
    std::unordered_map<std::string, std::string> labels;
    if (options.labels)
        labels = read_labels(*options.labels, options.root.value_or(std::filesystem::absolute(*options.labels).parent_path()));

    // Every vector of the store, prepared for its metric; the labelled ones are the queries.
    std::vector<int64_t> ids;
    std::vector<float> vectors;
    store.catalogue().all_vectors(dimension, ids, vectors);
    for (size_t i = 0; i < ids.size(); ++i) prepare_for_metric(s.metric, &vectors[i * dimension], dimension);
    const auto paths = store.catalogue().paths_of(ids);
    std::vector<int> class_of(ids.size(), -1);
    std::map<std::string, int> class_ids;
    std::vector<std::string> class_names;
    for (size_t i = 0; i < ids.size(); ++i) {
        std::string label;
        if (options.labels) {
            auto found = labels.find(paths[i]);
            if (found == labels.end()) continue;
            label = found->second;
        } else {
            label = std::filesystem::path(paths[i]).parent_path().filename().string();
        }
        auto [it, inserted] = class_ids.emplace(label, static_cast<int>(class_names.size()));
        if (inserted) class_names.push_back(label);
        class_of[i] = it->second;
    }
    std::vector<size_t> queries;
    for (size_t i = 0; i < ids.size(); ++i)
        if (class_of[i] >= 0) queries.push_back(i);
    if (queries.size() < 2) throw Error("fewer than two labelled images in the store; check --labels and --root");
    std::vector<size_t> class_size(class_names.size(), 0);
    for (size_t q : queries) ++class_size[class_of[q]];

    auto index = open_search_index(store, /*save=*/true);
    std::unordered_map<int64_t, size_t> slot_of;
    for (size_t i = 0; i < ids.size(); ++i) slot_of[ids[i]] = i;
    const int k = std::max(1, options.recall_k);
    std::vector<QueryScores> scores(queries.size());
    auto evaluate_range = [&](size_t begin, size_t end) {
        std::vector<std::pair<float, size_t>> ranking;
        for (size_t qi = begin; qi < end; ++qi) {
            const size_t q = queries[qi];
            const float* query = &vectors[q * dimension];
            // Exact ranking of every other labelled image.
            ranking.clear();
            for (size_t j : queries)
                if (j != q) ranking.emplace_back(distance(s.metric, query, &vectors[j * dimension], dimension), j);
            std::sort(ranking.begin(), ranking.end(), [&](const auto& a, const auto& b) {
                return a.first < b.first || (a.first == b.first && ids[a.second] < ids[b.second]);
            });
            const size_t relevant_total = class_size[class_of[q]] - 1;
            size_t relevant = 0;
            double precision_sum = 0;
            QueryScores& out = scores[qi];
            for (size_t r = 0; r < ranking.size(); ++r) {
                if (class_of[ranking[r].second] == class_of[q]) {
                    ++relevant;
                    precision_sum += double(relevant) / double(r + 1);
                }
                if (r == 0) out.p1 = relevant / 1.0;
                if (r == 4) out.p5 = relevant / 5.0;
                if (r == 9) out.p10 = relevant / 10.0;
            }
            out.ap = relevant_total ? precision_sum / double(relevant_total) : 0;

            // ANN recall@k against exact search over the whole store (itself left out).
            std::vector<std::pair<float, int64_t>> exact;
            for (size_t j = 0; j < ids.size(); ++j)
                if (j != q) exact.emplace_back(distance(s.metric, query, &vectors[j * dimension], dimension), ids[j]);
            const size_t kk = std::min<size_t>(k, exact.size());
            std::partial_sort(exact.begin(), exact.begin() + static_cast<long>(kk), exact.end());
            std::set<int64_t> truth;
            for (size_t j = 0; j < kk; ++j) truth.insert(exact[j].second);
            SearchParams params;
            params.k = std::max(k, 10) + 1;
            params.ef = options.ef;
            params.nprobe = options.nprobe > 0 ? options.nprobe : s.ivf_nprobe;
            size_t found = 0, taken = 0, relevant_seen = 0;
            for (const auto& n : index->search(query, params)) {
                if (n.id == ids[q]) continue;
                ++taken;
                if (taken <= kk) found += truth.count(n.id);
                const auto slot = slot_of.find(n.id);
                if (slot != slot_of.end() && class_of[slot->second] == class_of[q]) ++relevant_seen;
                if (taken == 1) out.index_p1 = relevant_seen / 1.0;
                if (taken == 5) out.index_p5 = relevant_seen / 5.0;
                if (taken == 10) out.index_p10 = relevant_seen / 10.0;
            }
            out.recall = kk ? double(found) / double(kk) : 1.0;
        }
    };
    const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> workers;
    const size_t chunk = (queries.size() + threads - 1) / threads;
    for (unsigned t = 0; t < threads; ++t) {
        const size_t begin = std::min(queries.size(), t * chunk), end = std::min(queries.size(), begin + chunk);
        workers.emplace_back(evaluate_range, begin, end);
    }
    for (auto& w : workers) w.join();

    EvalReport report;
    report.store_images = ids.size();
    report.queries = queries.size();
    report.metric = metric_name(s.metric);
    report.index_kind = index->kind();
    report.recall_k = k;
    report.ann_recall = 0;
    std::vector<double> class_ap(class_names.size(), 0);
    for (size_t qi = 0; qi < queries.size(); ++qi) {
        report.precision_at_1 += scores[qi].p1;
        report.precision_at_5 += scores[qi].p5;
        report.precision_at_10 += scores[qi].p10;
        report.mean_average_precision += scores[qi].ap;
        report.ann_recall += scores[qi].recall;
        report.index_precision_at_1 += scores[qi].index_p1;
        report.index_precision_at_5 += scores[qi].index_p5;
        report.index_precision_at_10 += scores[qi].index_p10;
        class_ap[class_of[queries[qi]]] += scores[qi].ap;
    }
    const double n = double(queries.size());
    report.precision_at_1 /= n;
    report.precision_at_5 /= n;
    report.precision_at_10 /= n;
    report.mean_average_precision /= n;
    report.ann_recall /= n;
    report.index_precision_at_1 /= n;
    report.index_precision_at_5 /= n;
    report.index_precision_at_10 /= n;
    for (size_t c = 0; c < class_names.size(); ++c)
        report.classes.push_back({class_names[c], class_size[c], class_ap[c] / double(class_size[c])});
    std::sort(report.classes.begin(), report.classes.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return report;
}

}  // namespace cbir
