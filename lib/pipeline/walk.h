#pragma once
// Turns the command line's inputs (folders and files) into the list of image files to consider.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace cbir {

struct WalkProblem {
    std::filesystem::path path;
    std::string reason;
};

// Folders are walked recursively in sorted order, taking files with an image extension and skipping
// hidden entries (names starting with '.', which also skips a store inside the folder); symlinked
// folders are not followed, so link loops cannot trap the walk. Files named explicitly are taken
// whatever their extension. Paths that cannot be read are reported through on_problem.
std::vector<std::filesystem::path> collect_image_files(const std::vector<std::filesystem::path>& inputs,
                                                       const std::function<void(const WalkProblem&)>& on_problem);

}  // namespace cbir
