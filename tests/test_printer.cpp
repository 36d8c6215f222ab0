// One printer per format; each must produce what its format's readers expect.
#include <doctest/doctest.h>

#include <algorithm>
#include <sstream>

#include "output/montage.h"
#include "output/printer.h"
#include "util/byte_text.h"

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

// Numbers with the digits tsv and csv print (the float32 value's shortest text), not its double's 17.
TEST_CASE("printer: jsonl is one typed object per line") {
    CHECK(print(OutputFormat::Jsonl) ==
          "{\"query\":\"q.jpg\",\"rank\":1,\"distance\":0.0,\"path\":\"a b.jpg\"}\n"
          "{\"query\":\"q.jpg\",\"rank\":2,\"distance\":12.340004,\"path\":\"odd,\\\"name\\\"\\tx.jpg\"}\n");
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

TEST_CASE("printer: a name that is not UTF-8 is shown, and given back exactly in base64") {
    const std::string latin1 = "caf\xe9.jpg";
    for (auto format : {OutputFormat::Jsonl, OutputFormat::Json}) {
        std::ostringstream out;
        auto printer = make_printer(format, out, {"query", "rank", "path"});
        printer->record({std::string("q.jpg"), int64_t(1), latin1});
        printer->finish();
        std::string text = out.str();
        text.erase(std::remove_if(text.begin(), text.end(), [](char c) { return c == ' ' || c == '\n'; }), text.end());
        CHECK(text.find("\"path\":\"caf\xef\xbf\xbd.jpg\",\"path_bytes\":\"Y2Fm6S5qcGc=\"") != std::string::npos);
        CHECK(text.find("query_bytes") == std::string::npos);  // only where needed
    }
    std::ostringstream paths;
    auto printer = make_printer(OutputFormat::Paths, paths, {"path"});
    printer->record({latin1});
    printer->finish();
    CHECK(paths.str() == latin1 + "\n");  // the bytes themselves, for xargs
}

TEST_CASE("byte text: a library's message of several lines becomes one line") {
    CHECK(one_line("Invalid input: Extent out of bounds (points to file position 462)\n") ==
          "Invalid input: Extent out of bounds (points to file position 462)");
    CHECK(one_line("first\r\n\tsecond \n third") == "first second third");
    CHECK(one_line("\n\n") == "");
    CHECK(one_line("plain") == "plain");
}

TEST_CASE("byte text: UTF-8 validity as RFC 3629 says, base64 both ways") {
    CHECK(is_valid_utf8("plain ascii"));
    CHECK(is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    for (const char* bad : {"\xe9", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\xff"})
        CHECK_MESSAGE(!is_valid_utf8(bad), bad);
    CHECK(displayable_utf8("a\xe9" "b\xc3\xa9") == "a\xef\xbf\xbd" "b\xc3\xa9");
    for (const std::string bytes : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\x00\xfe"}) {
        CHECK(base64_decode(base64_encode(bytes)) == bytes);
    }
    CHECK(base64_encode("foobar") == "Zm9vYmFy");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(!base64_decode("Zm8"));
    CHECK(!base64_decode("Z=8="));
    CHECK(!base64_decode("Zm9v!mFy"));
}

TEST_CASE("montage: a caption is cut to its tile, keeping its rank, distance and file name") {
    const std::string caption = "#2 12.34 /home/someone/photos/2024/holidays/a rather long folder name/IMG_1234.jpg";
    const std::string fitted = cbir::fitted_caption(caption, 300);
    CHECK(fitted.rfind("#2 12.34 ...", 0) == 0);
    CHECK(fitted.size() < caption.size());
    CHECK(fitted.substr(fitted.size() - 12) == "IMG_1234.jpg");
    CHECK(cbir::fitted_caption("#1 0 a.jpg", 160) == "#1 0 a.jpg");  // short ones are left alone
}
