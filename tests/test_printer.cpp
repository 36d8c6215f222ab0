// One printer per format; each must produce what its format's readers expect.
#include <doctest/doctest.h>

#include <sstream>

#include "output/printer.h"

using namespace cbir;

namespace {

std::string print(OutputFormat format) {
    std::ostringstream out;
    auto printer = make_printer(format, out, {"query", "rank", "distance", "path"});
    printer->record({std::string("q.jpg"), int64_t(1), 0.0, std::string("a b.jpg")});
    printer->record({std::string("q.jpg"), int64_t(2), 12.340003967285156, std::string("odd,\"name\"\tx.jpg")});
    printer->finish();
    return out.str();
}

}  // namespace

TEST_CASE("printer: tsv has a header and escapes tabs") {
    CHECK(print(OutputFormat::Tsv) ==
          "query\trank\tdistance\tpath\nq.jpg\t1\t0\ta b.jpg\nq.jpg\t2\t12.340004\todd,\"name\"\\tx.jpg\n");
}

TEST_CASE("printer: csv quotes per RFC 4180") {
    CHECK(print(OutputFormat::Csv) ==
          "query,rank,distance,path\nq.jpg,1,0,a b.jpg\nq.jpg,2,12.340004,\"odd,\"\"name\"\"\tx.jpg\"\n");
}

TEST_CASE("printer: jsonl is one typed object per line") {
    CHECK(print(OutputFormat::Jsonl) ==
          "{\"query\":\"q.jpg\",\"rank\":1,\"distance\":0.0,\"path\":\"a b.jpg\"}\n"
          "{\"query\":\"q.jpg\",\"rank\":2,\"distance\":12.340003967285156,\"path\":\"odd,\\\"name\\\"\\tx.jpg\"}\n");
}

TEST_CASE("printer: paths prints only the path column") {
    CHECK(print(OutputFormat::Paths) == "a b.jpg\nodd,\"name\"\tx.jpg\n");
}

TEST_CASE("printer: table aligns columns, numbers to the right") {
    const std::string table = print(OutputFormat::Table);
    CHECK(table ==
          "query  rank  distance  path\n"
          "q.jpg     1    0.0000  a b.jpg\n"
          "q.jpg     2   12.3400  odd,\"name\"\tx.jpg\n");
}
