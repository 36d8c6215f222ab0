#include "store/store_info.h"

#include <filesystem>

#include <fmt/format.h>

#include "embed/model_file.h"
#include "index/index_file.h"
#include "store/derived_index.h"
#include "util/file_stat.h"

namespace cbir {
std::string unfinished_index_run_notice(Store& store) {
    const std::string run = store.unfinished_index_run();
    if (run.empty()) return {};
    return fmt::format("{}: an index run has not finished ({}; killed, or still running): the store answers from "
                       "the {} images it committed; the same cbir index command adds the rest",
                       store.dir().string(), run, store.catalogue().count());
}

std::vector<std::pair<std::string, std::string>> describe_store(Store& store) {
    const StoreSettings& s = store.settings();
    std::vector<std::pair<std::string, std::string>> out;
    out.emplace_back("store", store.dir().string());
    out.emplace_back("format_version", std::to_string(kStoreFormatVersion));
    out.emplace_back("images", std::to_string(store.catalogue().count()));
    out.emplace_back("generation", std::to_string(store.catalogue().generation()));
    // Only when there is one: an index run that was killed or is running now (store.h).
    if (const std::string run = store.unfinished_index_run(); !run.empty())
        out.emplace_back("unfinished_index_run", run + "; the same cbir index command finishes it");
    out.emplace_back("model", s.model_path);
    out.emplace_back("model_sha256", s.model_sha256);
    out.emplace_back("model_untrained", looks_untrained(s.model_path, s.model_sha256) ? "yes" : "no");
    out.emplace_back("dimension", std::to_string(s.dimension));
    out.emplace_back("metric", metric_name(s.metric) + " (" + metric_description(s.metric) + ")");
    out.emplace_back("preprocessing", s.preprocessing);
    const Precision precision = s.precision.value_or(Precision::Float32);
    out.emplace_back("precision", std::string(precision_name(precision)) +
                                      (s.precision ? "" : " (not recorded: a store made before cbir recorded it)"));
    out.emplace_back("engine", precision_engine(precision, this_cpu()));
    out.emplace_back("index", s.index.describe());
    if (s.index.is_hnsw()) {
        out.emplace_back("hnsw_m", std::to_string(s.index.hnsw_m));
        out.emplace_back("hnsw_ef_construction", std::to_string(s.index.hnsw_ef_construction));
        out.emplace_back("hnsw_ef_search", std::to_string(s.index.hnsw_ef_search));
    }
    if (s.index.is_ivf()) out.emplace_back("ivf_nprobe", std::to_string(s.index.ivf_nprobe));
    if (s.index.kind != IndexKind::Flat) {
        std::string state;
        try {
            const IndexFileHeader header = read_index_file_header(store.index_file());
            const uint64_t generation = store.catalogue().generation();
            switch (match_index_file(store, header.built_from, generation)) {
                case IndexFileMatch::Current: state = "current (" + std::to_string(header.count) + " vectors)"; break;
                case IndexFileMatch::Behind:
                    state = "stale (built from generation " + std::to_string(header.built_from.generation) +
                            "; caught up by the next query)";
                    break;
                case IndexFileMatch::Foreign:
                    state = "not used (" + describe_foreign(store, header.built_from) + "); rebuilt by the next query";
                    break;
            }
        } catch (const IndexFileError& e) {
            state = s.index.searches_exactly(store.catalogue().count())
                        ? "none: too few vectors to train, searching exactly"
                        : std::string("unusable: ") + e.what() + " (rebuilt by the next query)";
        }
        out.emplace_back("index_file", state);
        out.emplace_back("index_bytes", std::to_string(file_size_or_zero(store.index_file())));
    }
    const auto catalogue = catalogue_file(store.dir());
    out.emplace_back("catalogue_bytes", std::to_string(file_size_or_zero(catalogue) +
                                                       file_size_or_zero(catalogue.string() + "-wal")));
    return out;
}

}  // namespace cbir
