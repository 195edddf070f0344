# Turns agent/dashboard.html into a C++ raw string literal (run at build time by
# agent/CMakeLists.txt):  cmake -DIN=dashboard.html -DOUT=dashboard_html.inc -P dashboard_embed.cmake
# The page is served as is by GET /; see agent/dashboard.hpp.
file(READ "${IN}" html)
set(delim "lanesync_html")
string(FIND "${html}" ")${delim}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw string delimiter )${delim}\"")
endif()
file(WRITE "${OUT}" "// Generated from ${IN} by dashboard_embed.cmake; do not edit.\nR\"${delim}(${html})${delim}\"\n")
