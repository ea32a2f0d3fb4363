"""Studies: what is built from runs. One run or its replications (`run`), scenarios side by
side (`compare`), parameter grids (`sweep`), the cheapest fleet (`plan`), the year ahead
(`forecast`) and one replica's figures (`probe`)."""
