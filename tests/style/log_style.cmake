# Every spdlog call in the libraries, daemons and CLI starts its message with `event=<name>`,
# then key=value fields (docs/operations.md, "Logs"). Run by CTest as `log_style`:
#   cmake -DSOURCE_DIR=<repo> -P tests/style/log_style.cmake
set(offenders "")
foreach(dir relay proxyhelper agent cli common)
  file(GLOB_RECURSE sources "${SOURCE_DIR}/${dir}/*.cpp" "${SOURCE_DIR}/${dir}/*.hpp")
  foreach(source IN LISTS sources)
    file(READ "${source}" text)
    # Semicolons and brackets would split or group CMake list items.
    string(REPLACE ";" "," text "${text}")
    string(REPLACE "[" "(" text "${text}")
    string(REPLACE "]" ")" text "${text}")
    # spdlog::info("..."), and spdlog::log(level, "...") with the level on one line.
    string(REGEX MATCHALL "spdlog::(info|warn|error|debug|trace|critical)\\([ \t\r\n]*\"[^\"]*\"|spdlog::log\\([^,]*,[ \t\r\n]*\"[^\"]*\"" calls "${text}")
    foreach(call IN LISTS calls)
      if(NOT call MATCHES "\"event=")
        file(RELATIVE_PATH shown "${SOURCE_DIR}" "${source}")
        string(REGEX REPLACE "[ \t\r\n]+" " " call "${call}")
        string(APPEND offenders "\n  ${shown}: ${call}")
      endif()
    endforeach()
  endforeach()
endforeach()
if(offenders)
  message(FATAL_ERROR "log calls not in the event=<name> key=value form:${offenders}")
endif()
