// `cbir info`: what a store holds and how it was built.
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "more_commands.h"
#include "store/store_info.h"
#include "shard/store_set.h"

namespace cbir::cli {
namespace {

// describe_store gives text for every format; JSON gets numbers and booleans as such.
nlohmann::ordered_json typed(const std::string& value) {
    if (value == "yes" || value == "no") return value == "yes";
    const bool integer = !value.empty() && value.size() < 19 &&
                         value.find_first_not_of("0123456789", value[0] == '-' ? 1 : 0) == std::string::npos &&
                         value != "-";
    if (integer) return std::stoll(value);
    return value;
}

struct InfoFlags {
    std::string store;
    std::string format;
    Verbosity verbosity;
};

int run(const InfoFlags& flags) {
    apply_verbosity(flags.verbosity);
    const auto dir = resolve_store(flags.store, /*for_writing=*/false);
    const auto facts = StoreSet::exists(dir) ? describe_set(StoreSet::open(dir))
                                             : describe_store(*Store::open(dir, CatalogueAccess::ReadOnly));
    const OutputFormat format = resolve_format(flags.format, "info");
    if (format == OutputFormat::Json || format == OutputFormat::Jsonl) {
        nlohmann::ordered_json object;
        for (const auto& [key, value] : facts) object[key] = typed(value);
        std::cout << object.dump(format == OutputFormat::Json ? 1 : -1, ' ', false,
                                 nlohmann::json::error_handler_t::replace)
                  << '\n';
    } else {
        auto printer = make_printer(format, std::cout, {"key", "value"});
        for (const auto& [key, value] : facts) printer->record({key, value});
        printer->finish();
    }
    return kOk;
}

}  // namespace

std::function<int()> add_info_command(CLI::App& app) {
    auto flags = std::make_shared<InfoFlags>();
    add_store_flag(app, flags->store);
    add_format_flag(app, flags->format, "info");
    add_verbosity_flags(app, flags->verbosity);
    return guarded_command([flags] { return run(*flags); });
}

}  // namespace cbir::cli
