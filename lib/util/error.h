#pragma once
// One exception type for every failure the library reports to its caller: the message is written for
// a person (it names the file and the cause), and the apps print it as one line on stderr.
#include <stdexcept>
#include <string>

namespace cbir {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace cbir
