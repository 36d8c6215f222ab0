// Commands that keep a store honest: check, repair, remove, prune.
#include <cstdio>
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "cli_common.h"
#include "options.h"
#include "more_commands.h"
#include "store/file_identity.h"
#include "store/derived_index.h"
#include "store/maintenance.h"
#include "store/writer_lock.h"
#include "shard/store_set.h"
#include "util/error.h"
#include "util/words.h"

namespace cbir::cli {
namespace {

struct StoreFlags {
    std::string store;
    std::vector<std::string> paths;
    bool dry_run = false;
    bool null_separated = false;
    Verbosity verbosity;
};

template <typename Run>
std::function<int()> guarded(std::shared_ptr<StoreFlags> flags, Run run) {
    return guarded_command([flags, run] {
        apply_verbosity(flags->verbosity);
        return run(*flags);
    });
}

// The stores a maintenance command acts on: the one store, or every shard of a set (a shard that
// was never made is an error: its index task has not run).
std::vector<std::filesystem::path> stores_in(const std::filesystem::path& dir) {
    if (!StoreSet::exists(dir)) return {dir};
    const StoreSet set = StoreSet::open(dir);
    std::vector<std::filesystem::path> out;
    for (int shard = 0; shard < set.shards(); ++shard) {
        if (!Store::exists(set.shard_dir(shard)))
            throw Error(fmt::format("{}: shard {} has no store (run its index task: --shard {})",
                                    set.shard_dir(shard).string(), shard, shard));
        out.push_back(set.shard_dir(shard));
    }
    return out;
}

std::shared_ptr<StoreFlags> common_flags(CLI::App& app) {
    auto flags = std::make_shared<StoreFlags>();
    add_store_flag(app, flags->store);
    add_verbosity_flags(app, flags->verbosity);
    return flags;
}

}  // namespace

std::function<int()> add_check_command(CLI::App& app) {
    auto flags = common_flags(app);
    return guarded(flags, [](const StoreFlags& f) {
        bool all_ok = true;
        const auto resolved = resolve_store(f.store, /*for_writing=*/false);
        std::optional<StoreSet> set;
        std::vector<std::pair<int, std::filesystem::path>> dirs{{-1, resolved}};
        if (StoreSet::exists(resolved)) {  // a shard without a store is a finding of check, not an error
            set = StoreSet::open(resolved);
            dirs.clear();
            for (int shard = 0; shard < set->shards(); ++shard) {
                if (Store::exists(set->shard_dir(shard))) {
                    dirs.emplace_back(shard, set->shard_dir(shard));
                    continue;
                }
                print_error(fmt::format("{}: shard {} has no store (run its index task: --shard {})",
                                        set->shard_dir(shard).string(), shard, shard));
                all_ok = false;
            }
        }
        for (const auto& [shard, dir] : dirs) {
            auto store = Store::open(dir, CatalogueAccess::ReadOnly);
            CheckReport report = check_store(*store);
            if (set) {
                // A shard belongs to its set: same metric and model, and every row where the
                // placement rule puts it (a swapped, linked or copied-in shard fails here).
                if (const auto why = set->shard_disagreement(store->settings()); !why.empty())
                    report.problems.push_back(fmt::format("{}: shard {} does not belong to the set: {}", dir.string(), shard, why));
                size_t misplaced = 0;
                std::string example;
                for (const auto& [id, path] : store->catalogue().all_paths())
                    if (set->shard_of(path) != shard && misplaced++ == 0) example = path;
                if (misplaced)
                    report.problems.push_back(fmt::format("{}: {} rows belong to other shards by the placement rule "
                                                          "(first: {}); is this shard folder another set's or moved?",
                                                          dir.string(), misplaced, example));
                // A task killed midway left a shard that looks whole.
                if (const std::string run = store->unfinished_index_run(); !run.empty())
                    report.problems.push_back(fmt::format("{}: shard {}'s index run did not finish ({}); run its "
                                                          "index task again (--shard {})",
                                                          dir.string(), shard, run, shard));
            }
            for (const auto& note : report.notes)
                if (!f.verbosity.quiet) std::fprintf(stderr, "cbir: %s\n", note.c_str());
            for (const auto& problem : report.problems) print_error(problem);
            if (!f.verbosity.quiet)
                std::fprintf(stderr, "cbir: check %s: %s\n", report.ok() ? "passed" : "FAILED", store->dir().c_str());
            all_ok = all_ok && report.ok();
        }
        return all_ok ? static_cast<int>(kOk) : static_cast<int>(kNoResults);
    });
}

std::function<int()> add_repair_command(CLI::App& app) {
    auto flags = common_flags(app);
    return guarded(flags, [](const StoreFlags& f) {
        bool all_ok = true;
        for (const auto& dir : stores_in(resolve_store(f.store, /*for_writing=*/true))) {
            WriterLock lock(dir);
            auto store = Store::open(dir);
            remove_abandoned_files(*store);
            reindex_store(*store, lock, store->settings().index);
            const CheckReport report = check_store(*store);
            for (const auto& problem : report.problems) print_error(problem);
            if (!f.verbosity.quiet)
                std::fprintf(stderr, "cbir: rebuilt the index of %zu images in %s; check %s\n", store->catalogue().count(),
                             dir.c_str(), report.ok() ? "passed" : "still fails (see above)");
            all_ok = all_ok && report.ok();
        }
        return all_ok ? static_cast<int>(kOk) : static_cast<int>(kNoResults);
    });
}

std::function<int()> add_remove_command(CLI::App& app) {
    auto flags = common_flags(app);
    app.add_option("paths", flags->paths, "Images, or folders (every image under them), to remove from the store (the files are not touched); - reads stdin");
    add_null_option(app, flags->null_separated, "Paths on stdin are NUL-separated");
    return guarded(flags, [](const StoreFlags& f) {
        std::vector<std::string> keys;
        std::vector<std::string> named_keys;
        const auto named_paths = expand_inputs(f.paths, f.null_separated);
        for (const auto& p : named_paths) named_keys.push_back(catalogue_key(p));
        std::vector<bool> found(named_keys.size(), false);
        size_t removed = 0, remaining = 0;
        // In a set each path (or folder) is looked for in every shard: one holds a file, several a folder's.
        for (const auto& dir : stores_in(resolve_store(f.store, /*for_writing=*/true))) {
            WriterLock lock(dir);
            auto store = Store::open(dir);
            keys.clear();
            for (size_t i = 0; i < named_keys.size(); ++i) {
                const auto named = rows_named_by(*store, named_keys[i]);
                found[i] = found[i] || !named.empty();
                keys.insert(keys.end(), named.begin(), named.end());
            }
            removed += remove_from_store(*store, lock, keys);
            remaining += store->catalogue().count();
        }
        for (size_t i = 0; i < named_paths.size(); ++i)
            if (!found[i] && !f.verbosity.quiet) std::fprintf(stderr, "cbir: not in the store: %s\n", named_paths[i].c_str());
        if (!f.verbosity.quiet)
            std::fprintf(stderr, "%s\n", fmt::format("cbir: removed {}; {} in the store", counted(removed, "image"),
                                                     counted(remaining, "image")).c_str());
        return removed ? static_cast<int>(kOk) : static_cast<int>(kNoResults);
    });
}

std::function<int()> add_prune_command(CLI::App& app) {
    auto flags = common_flags(app);
    app.add_option("folders", flags->paths, "Only entries under these folders (default: all)");
    app.add_flag("-n,--dry-run", flags->dry_run, "Print what would be removed, remove nothing");
    return guarded(flags, [](const StoreFlags& f) {
        std::vector<std::string> roots;
        for (const auto& p : f.paths) roots.push_back(catalogue_key(p));
        size_t gone_total = 0;
        for (const auto& dir : stores_in(resolve_store(f.store, /*for_writing=*/!f.dry_run))) {
            std::unique_ptr<WriterLock> lock;
            if (!f.dry_run) lock = std::make_unique<WriterLock>(dir);
            auto store = Store::open(dir, f.dry_run ? CatalogueAccess::ReadOnly : CatalogueAccess::ReadWrite);
            const auto gone = rows_whose_files_are_gone(*store, roots);
            if (lock) remove_from_store(*store, *lock, gone);
            for (const auto& path : gone) std::cout << display_path(path) << '\n';
            gone_total += gone.size();
        }
        if (!f.verbosity.quiet)
            std::fprintf(stderr, "%s\n", fmt::format("cbir: {} {} whose files are gone", f.dry_run ? "would remove" : "removed",
                                                     counted(gone_total, "image")).c_str());
        return gone_total == 0 ? static_cast<int>(kNoResults) : static_cast<int>(kOk);
    });
}

}  // namespace cbir::cli
