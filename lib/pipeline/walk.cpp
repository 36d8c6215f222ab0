#include "pipeline/walk.h"

#include <algorithm>

#include "image/decode.h"

namespace cbir {
namespace {

bool is_hidden(const std::filesystem::path& p) {
    const std::string name = p.filename().string();
    return name.size() > 1 && name[0] == '.' && name != "..";
}

void walk_folder(const std::filesystem::path& root, std::vector<std::filesystem::path>& out,
                 const std::function<void(const WalkProblem&)>& on_problem) {
    std::error_code ec;
    std::filesystem::recursive_directory_iterator it(root, std::filesystem::directory_options::none, ec);
    if (ec) {
        on_problem({root, "cannot read folder: " + ec.message()});
        return;
    }
    for (const std::filesystem::recursive_directory_iterator end; it != end;) {
        const auto& entry = *it;
        if (is_hidden(entry.path())) {
            if (entry.is_directory(ec)) it.disable_recursion_pending();
        } else if (entry.is_regular_file(ec) && has_image_extension(entry.path())) {
            out.push_back(entry.path());
        }
        it.increment(ec);
        if (ec) {
            on_problem({it == end ? root : it->path(), "cannot read folder: " + ec.message()});
            ec.clear();
            if (it == end) break;
        }
    }
}

}  // namespace

std::vector<std::filesystem::path> collect_image_files(const std::vector<std::filesystem::path>& inputs,
                                                       const std::function<void(const WalkProblem&)>& on_problem) {
    std::vector<std::filesystem::path> out;
    for (const auto& input : inputs) {
        std::error_code ec;
        const auto status = std::filesystem::status(input, ec);
        if (ec || !std::filesystem::exists(status)) {
            on_problem({input, "no such file or folder"});
        } else if (std::filesystem::is_directory(status)) {
            std::vector<std::filesystem::path> found;
            walk_folder(input, found, on_problem);
            std::sort(found.begin(), found.end());
            out.insert(out.end(), found.begin(), found.end());
        } else if (std::filesystem::is_regular_file(status)) {
            out.push_back(input);
        } else {
            on_problem({input, "not a regular file or folder"});
        }
    }
    return out;
}

}  // namespace cbir
