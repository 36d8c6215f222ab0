// `cbir dups`: near-duplicate groups within the store.
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "options.h"
#include "more_commands.h"
#include "search/duplicates.h"
#include "util/byte_text.h"

namespace cbir::cli {
namespace {

struct DupsFlags {
    std::string store;
    double min_similarity = DuplicateOptions{}.min_similarity;
    int candidates = DuplicateOptions{}.candidates;
    std::string format;
    bool null_separated = false;
    Verbosity verbosity;
};

int run(const DupsFlags& flags) {
    apply_verbosity(flags.verbosity);
    auto store = Store::open(require_single_store(resolve_store(flags.store, /*for_writing=*/false), "dups"), CatalogueAccess::ReadOnly);
    DuplicateOptions options;
    options.min_similarity = flags.min_similarity;
    options.candidates = flags.candidates;
    const auto groups = find_duplicate_groups(*store, options);
    const OutputFormat format = resolve_format(flags.format, "dups");
    if (format == OutputFormat::Jsonl || format == OutputFormat::Json) {
        // One object per group: scripts get the grouping directly.
        nlohmann::ordered_json all = nlohmann::ordered_json::array();
        for (size_t g = 0; g < groups.size(); ++g) {
            nlohmann::ordered_json group{{"group", g + 1}, {"size", groups[g].size()}, {"paths", nlohmann::json::array()},
                                         {"similarity", nlohmann::json::array()}};
            nlohmann::ordered_json exact_names = nlohmann::json::array();  // base64, for names not valid UTF-8
            bool any_not_utf8 = false;
            for (const auto& m : groups[g]) {
                const std::string shown = display_path(m.path);
                nlohmann::ordered_json name;
                set_text_field(name, "path", shown);
                group["paths"].push_back(name["path"]);
                exact_names.push_back(name.contains("path_bytes") ? name["path_bytes"] : nlohmann::ordered_json());
                any_not_utf8 = any_not_utf8 || name.contains("path_bytes");
                group["similarity"].push_back(m.similarity);
            }
            if (any_not_utf8) group["paths_bytes"] = exact_names;
            if (format == OutputFormat::Jsonl)
                std::cout << dump_json(group) << '\n';
            else
                all.push_back(group);
        }
        if (format == OutputFormat::Json) std::cout << dump_json(all, 1) << '\n';
    } else {
        // `paths` prints every member but the first of each group: what `| xargs rm` would remove.
        auto printer = make_printer(format, std::cout, {"group", "similarity", "path"}, flags.null_separated);
        for (size_t g = 0; g < groups.size(); ++g)
            for (size_t m = 0; m < groups[g].size(); ++m)
                if (format != OutputFormat::Paths || m > 0)
                    printer->record({static_cast<int64_t>(g + 1), groups[g][m].similarity, display_path(groups[g][m].path)});
        printer->finish();
    }
    std::cout.flush();
    return groups.empty() ? kNoResults : kOk;
}

}  // namespace

std::function<int()> add_dups_command(CLI::App& app) {
    auto flags = std::make_shared<DupsFlags>();
    add_store_flag(app, flags->store);
    add_min_similarity_option(app, flags->min_similarity,
                              "Cosine similarity at which two images count as duplicates (see the README for how it "
                              "was chosen)")
        ->capture_default_str();
    app.add_option("--candidates", flags->candidates, "Nearest neighbours examined per image")
        ->check(in_range(1, 1000))->capture_default_str();
    add_format_flag(app, flags->format, "dups");
    add_null_option(app, flags->null_separated, "With --format paths: NUL-terminated (xargs -0)");
    add_verbosity_flags(app, flags->verbosity);
    return guarded_command([flags] { return run(*flags); });
}

}  // namespace cbir::cli
