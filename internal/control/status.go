package control

// Status is the answer to "status": the client's state, as chronyc
// tracking shows chrony's. Times are in seconds, frequencies in ppm.
type Status struct {
	Synchronized bool   `json:"synchronized"`
	Alarm        string `json:"alarm,omitempty"`
	Clock        string `json:"clock"`
	// The time served: stratum, reference ID (dotted quad), leap.
	Stratum int    `json:"stratum"`
	RefID   string `json:"reference_id"`
	Leap    string `json:"leap"`
	// The selected source the served state comes from, "" if none.
	Reference string `json:"reference_source,omitempty"`
	// The combined offset estimate (the sources' time minus the clock's)
	// and the oscillator's frequency error with its standard deviation.
	Offset      float64 `json:"offset_s"`
	Frequency   float64 `json:"frequency_ppm"`
	FrequencySD float64 `json:"frequency_sd_ppm"`
	RootDelay   float64 `json:"root_delay_s"`
	RootDisp    float64 `json:"root_dispersion_s"`
}

// Source is one entry of the answer to "sources", as chronyc sources
// shows chrony's.
type Source struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// State is "selected", "unpreferred" (a truechimer left out because
	// a preferred source is one), "falseticker", "noselect", "smearing" (suspected of
	// smearing a leap second) or "none" (no estimate yet).
	State   string `json:"state"`
	Stratum int    `json:"stratum"`
	Poll    int    `json:"poll"` // log2 seconds
	Reach   uint8  `json:"reach"`
	// Offset is the source's time minus the clock's, with its standard
	// deviation.
	Offset   float64 `json:"offset_s"`
	OffsetSD float64 `json:"offset_sd_s"`
}
