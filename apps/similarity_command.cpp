// `cbir similarity A B [C…]`: the notebook's first cells — pairwise cosine similarity and squared L2.
#include <iostream>
#include <memory>

#include "cli_common.h"
#include "options.h"
#include "more_commands.h"
#include "index/metric.h"
#include "pipeline/embed_files.h"
#include "pipeline/model_resolution.h"
#include "util/error.h"

namespace cbir::cli {
namespace {

struct SimilarityFlags {
    std::vector<std::string> images;
    std::string model;
    std::string format;
    std::string matrix;  // "", "cosine" or "l2"
    bool fast_decode = false;
    Verbosity verbosity;
};

int run(const SimilarityFlags& flags, const std::filesystem::path& exe_dir) {
    apply_verbosity(flags.verbosity);
    EmbedFilesOptions options;
    if (!flags.model.empty()) options.model = flags.model;
    options.executable_dir = exe_dir;
    options.preprocessing = preprocessing_for(flags.fast_decode);
    bool failed = false;
    std::vector<std::filesystem::path> images(flags.images.begin(), flags.images.end());
    require_image_files(images, "similarity");
    const OutputFormat format = resolve_format(flags.format, "similarity");
    const auto embedded = embed_files(images, options, [&](const std::filesystem::path& path, const std::string& why) {
        failed = true;
        print_error(path.string() + ": " + why);
    });
    if (failed) return kError;
    const size_t n = embedded.size();
    const size_t d = n ? embedded[0].vector.size() : 0;
    if (!flags.matrix.empty()) {
        std::vector<std::string> columns{"image"};
        for (const auto& e : embedded) columns.push_back(e.path.string());
        auto printer = make_printer(format, std::cout, columns);
        for (const auto& a : embedded) {
            Record row{a.path.string()};
            for (const auto& b : embedded)
                row.emplace_back(flags.matrix == "l2" ? squared_l2(a.vector.data(), b.vector.data(), d)
                                                      : cosine_similarity(a.vector.data(), b.vector.data(), d));
            printer->record(row);
        }
        printer->finish();
    } else {
        auto printer = make_printer(format, std::cout, {"a", "b", "cosine", "squared_l2"});
        for (size_t i = 0; i < n; ++i)
            for (size_t j = i + 1; j < n; ++j)
                printer->record({embedded[i].path.string(), embedded[j].path.string(),
                                 cosine_similarity(embedded[i].vector.data(), embedded[j].vector.data(), d),
                                 squared_l2(embedded[i].vector.data(), embedded[j].vector.data(), d)});
        printer->finish();
    }
    return kOk;
}

}  // namespace

std::function<int()> add_similarity_command(CLI::App& app, const char* argv0) {
    auto flags = std::make_shared<SimilarityFlags>();
    app.add_option("images", flags->images, "Two or more images")->required()->expected(2, -1);
    add_model_option(app, flags->model, "TorchScript model (default: models/resnet18-*.pt)");
    add_fast_decode_flag(app, flags->fast_decode, "");
    app.add_option("--matrix", flags->matrix, "Print a matrix of cosine similarities or squared L2 distances instead "
                                              "of one row per pair")
        ->check(CLI::IsMember({"cosine", "l2"}));
    add_format_flag(app, flags->format, "similarity");
    add_verbosity_flags(app, flags->verbosity);
    const std::filesystem::path exe_dir = executable_dir(argv0);
    return guarded_command([flags, exe_dir] { return run(*flags, exe_dir); });
}

}  // namespace cbir::cli
