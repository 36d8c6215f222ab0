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
        for (const auto& dir : stores_in(resolve_store(f.store, /*for_writing=*/false))) {
            auto store = Store::open(dir, CatalogueAccess::ReadOnly);
            const CheckReport report = check_store(*store);
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
    app.add_option("paths", flags->paths, "Images to remove from the store (the files are not touched); - reads stdin")
        ->required();
    add_null_option(app, flags->null_separated, "Paths on stdin are NUL-separated");
    return guarded(flags, [](const StoreFlags& f) {
        std::vector<std::string> keys;
        for (const auto& p : expand_inputs(f.paths, f.null_separated))
            keys.push_back(catalogue_key(p));
        size_t removed = 0, remaining = 0;
        // In a set each path is removed from every shard: the one it is placed in holds it.
        for (const auto& dir : stores_in(resolve_store(f.store, /*for_writing=*/true))) {
            WriterLock lock(dir);
            auto store = Store::open(dir);
            removed += remove_from_store(*store, lock, keys);
            remaining += store->catalogue().count();
        }
        if (!f.verbosity.quiet)
            std::fprintf(stderr, "cbir: removed %zu of %zu; %zu images in the store\n", removed, keys.size(), remaining);
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
            std::fprintf(stderr, "cbir: %s %zu entries whose files are gone\n", f.dry_run ? "would remove" : "removed",
                         gone_total);
        return gone_total == 0 ? static_cast<int>(kNoResults) : static_cast<int>(kOk);
    });
}

}  // namespace cbir::cli
