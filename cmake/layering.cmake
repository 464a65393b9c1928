# Layers of lanrelay's libraries: dependencies point down (docs/architecture.md, "Libraries and who
# may include whom"). Each library declares its layer where it is defined:
#     lanrelay_layer(lanrelay_base 0)
# and after every add_subdirectory the top-level CMakeLists.txt calls lanrelay_check_layering(),
# which stops the configure step when a lanrelay library links one at its own layer or above.
# Executables and test targets sit on top and are not checked.
#
#   0  base                                  errors, logging, files, keys, settings table, Asio
#   1  segment, content, upstream, serving,  protocol, content and transport pieces, and the
#      daemon                                daemon runtime
#   2  proxy_resolution                      how an agent finds its way out
#   3  agent                                 the agent side: discovery, fetch, updates
#   4  relay, proxyhelper                    the two daemons' libraries
#
# A new library: add_library(...) then one line lanrelay_layer(<target> <n>).

set_property(GLOBAL PROPERTY LANRELAY_LAYERED_TARGETS "")

function(lanrelay_layer target layer)
  if(NOT layer MATCHES "^[0-9]+$")
    message(FATAL_ERROR "lanrelay_layer(${target} ${layer}): the layer must be a number")
  endif()
  set_property(TARGET ${target} PROPERTY LANRELAY_LAYER ${layer})
  set_property(GLOBAL APPEND PROPERTY LANRELAY_LAYERED_TARGETS ${target})
endfunction()

# The real target behind a link item (alias resolved), or "" when it is not a layered target.
function(_lanrelay_layered_target item out)
  set(${out} "" PARENT_SCOPE)
  # $<LINK_ONLY:x> (what a static library's PRIVATE links become) counts as a link to x.
  string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" item "${item}")
  if(NOT TARGET "${item}")
    return()
  endif()
  get_target_property(aliased "${item}" ALIASED_TARGET)
  if(aliased)
    set(item "${aliased}")
  endif()
  get_target_property(layer "${item}" LANRELAY_LAYER)
  if(NOT layer STREQUAL "layer-NOTFOUND")
    set(${out} "${item}" PARENT_SCOPE)
  endif()
endfunction()

function(lanrelay_check_layering)
  get_property(targets GLOBAL PROPERTY LANRELAY_LAYERED_TARGETS)
  set(problems "")
  foreach(target IN LISTS targets)
    get_target_property(layer ${target} LANRELAY_LAYER)
    set(links "")
    foreach(property LINK_LIBRARIES INTERFACE_LINK_LIBRARIES)
      get_target_property(items ${target} ${property})
      if(items)
        list(APPEND links ${items})
      endif()
    endforeach()
    set(linked_targets "")
    foreach(item IN LISTS links)
      _lanrelay_layered_target("${item}" linked)
      if(NOT linked STREQUAL "" AND NOT linked STREQUAL target)
        list(APPEND linked_targets ${linked})
      endif()
    endforeach()
    list(REMOVE_DUPLICATES linked_targets)
    foreach(linked IN LISTS linked_targets)
      get_target_property(linked_layer ${linked} LANRELAY_LAYER)
      if(linked_layer GREATER_EQUAL layer)
        string(APPEND problems
          "  ${target} (layer ${layer}) links ${linked} (layer ${linked_layer}): a library may "
          "only link libraries of a lower layer\n")
      endif()
    endforeach()
  endforeach()
  if(problems)
    message(FATAL_ERROR "lanrelay layering (cmake/layering.cmake) is broken:\n${problems}"
      "Move the shared code down into a lower library, or link the other way round.")
  endif()
endfunction()
