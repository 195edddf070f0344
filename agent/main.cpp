// lanesync: the lane agent and its command line (docs/cli.md).
#include "agent/cli.hpp"

int main(int argc, char** argv) {
    return lanesync::agent::cli_main(argc, argv);
}
