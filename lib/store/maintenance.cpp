#include "store/maintenance.h"

#include <algorithm>
#include <random>

#include <fmt/format.h>

#include "index/index_file.h"
#include "index/ivf_index.h"
#include "store/file_identity.h"
#include "store/derived_index.h"
#include "store/store_info.h"
#include "util/atomic_file.h"
#include "util/file_stat.h"
#include "util/hash.h"
#include "util/log.h"

namespace cbir {

size_t remove_abandoned_files(Store& store) {
    size_t removed = 0;
    const std::string repair = store_command(store.dir(), "repair");
    for (const auto& leftover : abandoned_temporary_files(store.dir())) {
        std::error_code ec;
        if (std::filesystem::remove(leftover, ec)) {
            log_debug(fmt::format("removed {}, left by an interrupted save", leftover.string()));
            ++removed;
        }
    }
    return removed;
}

namespace {

void check_catalogue(Store& store, CheckReport& report) {
    // A killed run leaves a sound store holding part of its images: news, not damage.
    if (std::string unfinished = unfinished_index_run_notice(store); !unfinished.empty())
        report.notes.push_back(std::move(unfinished));
    Catalogue& catalogue = store.catalogue();
    const std::vector<std::string> integrity = catalogue.integrity_check();
    if (integrity != std::vector<std::string>{"ok"}) {
        // SQLite lists every damaged page and index entry (dozens of lines): one problem line, the
        // list itself with -v.
        for (const auto& line : integrity) log_debug("SQLite integrity check: " + line);
        report.problems.push_back(fmt::format("{}: SQLite integrity check failed ({}{}); the catalogue is damaged: {}",
                                              catalogue.file().string(), integrity.front(),
                                              integrity.size() > 1 ? fmt::format(", and {} more with -v",
                                                                                 integrity.size() - 1)
                                                                   : "",
                                              kDamagedCatalogueRecovery));
    }
    const int dimension = store.settings().dimension;
    if (const size_t wrong = catalogue.rows_with_wrong_dimension(dimension))
        report.problems.push_back(fmt::format("{}: {} rows hold vectors of the wrong size (store dimension {}); remove "
                                              "them with '{}' and index those files again",
                                              catalogue.file().string(), wrong, dimension,
                                              store_command(store.dir(), "remove PATH")));
}

void check_model(const StoreSettings& s, CheckReport& report) {
    if (auto st = stat_file(s.model_path); !st) {
        report.problems.push_back(fmt::format("{}: the store's model is missing; queries of new images will need "
                                              "--model with sha256 {}", s.model_path, s.model_sha256));
    } else if (sha256_file_hex(s.model_path) != s.model_sha256) {
        report.problems.push_back(fmt::format("{}: the model file changed (sha256 differs from the store's {}); put the "
                                              "original back or build a new store", s.model_path, s.model_sha256));
    }
}

// The index file's header, checksum and catalogue state; leftovers of interrupted saves.
void check_index_file(Store& store, CheckReport& report) {
    const std::string repair = store_command(store.dir(), "repair");
    for (const auto& leftover : abandoned_temporary_files(store.dir()))
        report.notes.push_back(fmt::format("{}: left by an interrupted save ({} bytes); '{}' removes it",
                                           leftover.string(), file_size_or_zero(leftover), repair));
    const std::string file = store.index_file().string();
    const uint64_t generation = store.catalogue().generation();
    if (store.settings().index.searches_exactly(store.catalogue().count())) return;
    std::error_code ec;
    if (!std::filesystem::exists(store.index_file(), ec)) {
        report.notes.push_back(fmt::format("{}: missing; the next query (or '{}') builds it", file, repair));
        return;
    }
    try {
        IndexFileHeader header;
        map_index_file(store.index_file(), header);  // header and whole-file checksum
        const auto match = match_index_file(store, header.built_from, generation);
        if (match == IndexFileMatch::Behind)
            report.notes.push_back(fmt::format("{}: stale (built from generation {}, catalogue at {}); the next query "
                                               "(or '{}') catches it up",
                                               file, header.built_from.generation, generation, repair));
        else if (match == IndexFileMatch::Foreign)
            report.notes.push_back(fmt::format("{}: not used ({}); the next query (or '{}') rebuilds it", file,
                                               describe_foreign(store, header.built_from), repair));
    } catch (const IndexFileError& e) {
        report.problems.push_back(fmt::format("{}; run '{}' to rebuild it from the catalogue", e.what(), repair));
    }
}

// Each sampled vector must come back first: its own row, or a row whose vector is exactly this one
// (identical images tie at distance 0, in id order). A hit at distance 0 is not enough: an index
// built from another catalogue answers with other rows' ids.
void check_samples(Store& store, size_t samples, CheckReport& report) {
    Catalogue& catalogue = store.catalogue();
    const int dimension = store.settings().dimension;
    auto index = open_search_index(store, IndexWriteBack::Never, IndexFileHolding::Mapped);
    std::vector<std::pair<int64_t, std::string>> rows = catalogue.all_paths();
    if (index->size() != rows.size()) {  // an index of other rows (a catalogue restored under it, say)
        report.problems.push_back(fmt::format("{}: the {} index holds {} vectors for {} catalogue rows; run '{}'",
                                              store.index_file().string(), index_kind_name(index->kind()),
                                              index->size(), rows.size(), store_command(store.dir(), "repair")));
        return;
    }
    std::shuffle(rows.begin(), rows.end(), std::mt19937(12345));
    rows.resize(std::min(rows.size(), samples));
    std::vector<int64_t> ids;
    for (const auto& row : rows) ids.push_back(row.first);
    std::vector<float> vectors;
    catalogue.vectors_of(ids, dimension, vectors);
    size_t misses = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
        const float* own = &vectors[i * dimension];
        // A wide search: this checks that the index is whole, not its recall at the query default
        // (mixed distributions can miss a few self-lookups at ef 64 in an intact graph).
        const auto hits = index->search(own, {1, 256, 0});
        bool found = !hits.empty() && hits[0].id == ids[i];
        if (!found && !hits.empty()) {
            std::vector<float> first;
            catalogue.vectors_of({hits[0].id}, dimension, first);
            found = std::equal(first.begin(), first.end(), own);
        }
        if (!found) ++misses;
    }
    if (misses > ids.size() / 20)  // approximate indexes may miss a few; more means a broken index
        report.problems.push_back(fmt::format("{}: {} of {} sampled images do not find themselves in the {} index; "
                                              "run '{}'", store.dir().string(), misses, ids.size(),
                                              index_kind_name(index->kind()), store_command(store.dir(), "repair")));
    else
        report.notes.push_back(fmt::format("{} of {} sampled images found themselves first", ids.size() - misses,
                                           ids.size()));
}

}  // namespace

CheckReport check_store(Store& store, size_t samples) {
    CheckReport report;
    check_catalogue(store, report);
    check_model(store.settings(), report);
    check_index_file(store, report);
    if (report.problems.empty() && store.catalogue().count() > 0) check_samples(store, samples, report);
    return report;
}

size_t remove_rows(Store& store, const WriterLock&, const std::vector<std::string>& paths) {
    Transaction txn(store.catalogue());
    const size_t removed = store.catalogue().remove_paths(paths).size();
    txn.commit();
    return removed;
}

size_t remove_from_store(Store& store, const WriterLock& held, const std::vector<std::string>& paths) {
    const size_t removed = remove_rows(store, held, paths);
    if (removed) refresh_index_file(store);
    return removed;
}

std::vector<std::string> rows_named_by(Store& store, const std::string& key) {
    if (store.catalogue().find_by_path(key)) return {key};
    std::vector<std::string> under;
    for (const auto& row : store.catalogue().all_paths())
        if (key_is_under(row.second, key)) under.push_back(row.second);
    return under;
}

std::vector<std::string> rows_whose_files_are_gone(Store& store, const std::vector<std::string>& roots) {
    std::vector<std::string> gone;
    for (const auto& row : store.catalogue().all_paths()) {
        const std::string& path = row.second;  // a named variable: lambdas cannot capture bindings in C++17
        const bool under_a_root = roots.empty() || std::any_of(roots.begin(), roots.end(), [&](const std::string& root) {
            return key_is_under(path, root);
        });
        if (under_a_root && !stat_file(path)) gone.push_back(path);
    }
    return gone;
}

}  // namespace cbir
