//! Macros shared by the ClickHouse readers of the API. The counter columns come from the one
//! list, [`atlasmesh_core::for_each_window_counter!`].

/// Declares a ClickHouse row struct ending in the counter columns, plus its `counters()`.
macro_rules! counter_row {
    ($name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        ::atlasmesh_core::for_each_window_counter!(counter_row_of, $name { $($field: $ty),* });
    };
}

/// [`counter_row!`] given the counter list.
macro_rules! counter_row_of {
    ([$($counter:ident : $cty:ty),* $(,)?] $name:ident { $($field:ident : $ty:ty),* }) => {
        #[derive(Debug, ::clickhouse::Row, ::serde::Deserialize)]
        struct $name {
            $($field: $ty,)*
            $($counter: $cty,)*
        }

        impl $name {
            fn counters(&self) -> ::atlasmesh_core::window::Counters {
                ::atlasmesh_core::window::Counters {
                    $($counter: self.$counter,)*
                }
            }
        }
    };
}

/// Every counter summed under its own name, `sum(samples) AS samples, ...` (a `&'static str`).
macro_rules! counter_sums {
    () => {
        ::atlasmesh_core::for_each_window_counter!(counter_sums_of)
    };
}

/// [`counter_sums!`] given the counter list.
macro_rules! counter_sums_of {
    ([$first:ident : $fty:ty $(, $counter:ident : $cty:ty)* $(,)?]) => {
        concat!(
            "sum(", stringify!($first), ") AS ", stringify!($first)
            $(, ", sum(", stringify!($counter), ") AS ", stringify!($counter))*
        )
    };
}
