package regulatest

// The property names and enums below are copied from the public OpenAPI
// specifications named in the package doc, at the tags named there.

// Document Reader, p-process.yml: ProcessRequest.properties.
var processRequestProps = set(
	"processParam", "List", "tag", "tenant", "env", "livePortrait",
	"extPortrait", "ContainerList", "systemInfo", "passBackObject", "dtc",
	"ImageUrls",
)

// Document Reader, p-process.yml: ProcessParams.properties (68).
var processParamsProps = set(
	"alreadyCropped", "authParams", "bsiTr03135", "checkAuth",
	"checkLiveness", "checkRequiredTextFields", "config", "convertCase",
	"customParams", "dateFormat", "depersonalizeLog", "deviceId",
	"deviceType", "deviceTypeHex", "disableAuthResolutionFilter",
	"disablePerforationOCR", "doBarcodes", "doDetectCan",
	"documentGroupFilter", "documentIdList", "doublePageSpread", "faceApi",
	"fastDocDetect", "fieldTypesFilter", "fieldTypesIgnoreFilter",
	"forceDocFormat", "forceDocID", "forceReadMrzBeforeLocate",
	"generateAlpha2Codes", "generateDTCVC", "generateDoublePageSpreadImage",
	"generateNumericCodes", "ignoreDeviceIdFromImage", "imageDpiOutMax",
	"imageOutputMaxHeight", "imageOutputMaxWidth", "imageQa", "lcidFilter",
	"lcidIgnoreFilter", "log", "logLevel", "matchTextFieldMask",
	"measureSystem", "minimalHolderAge", "mrzDetectMode", "mrzFormatsFilter",
	"multiDocOnImage", "noGraphics", "oneShotIdentification", "parseBarcodes",
	"pdfPagesLimit", "processAuth", "respectImageQuality", "resultTypeOutput",
	"returnCroppedBarcode", "returnTransliteratedFields",
	"returnUncroppedImage", "rfid", "scenario", "selectLongestNames",
	"shiftExpiryDate", "splitNames", "strictBarcodeDigitalSignatureCheck",
	"strictDLCategoryExpiry", "strictImageQuality", "strictSecurityChecks",
	"updateOCRValidityByGlare", "useFaceApi",
)

// Document Reader, p-process.yml: ProcessRequestImage.properties.
var processRequestImageProps = set("ImageData", "light", "page_idx")

// Document Reader, common.yml: ImageData.properties.
var docImageDataProps = set("image", "format")

// Document Reader, common.yml: Scenario.enum.
var scenarios = set(
	"Mrz", "Barcode", "Locate", "Ocr", "DocType", "MrzOrBarcode",
	"MrzOrLocate", "MrzAndLocate", "BarcodeAndLocate", "MrzOrOcr",
	"MrzOrBarcodeOrOcr", "LocateVisual_And_MrzOrOcr", "FullProcess",
	"FullAuth", "RusStamp", "OcrFree", "CreditCard", "Capture", "DTC", "RFID",
)

// Document Reader, common.yml: Light.enum.
var lights = map[int]bool{0: true, 2: true, 4: true, 6: true, 24: true, 128: true, 3072: true}

// Document Reader, rt.yml: Result.enum.
var resultTypes = map[int]bool{
	1: true, 3: true, 5: true, 6: true, 7: true, 8: true, 9: true, 15: true,
	16: true, 17: true, 18: true, 19: true, 20: true, 26: true, 30: true,
	32: true, 33: true, 34: true, 35: true, 36: true, 37: true, 38: true,
	39: true, 49: true, 50: true, 61: true, 62: true, 73: true, 85: true,
	87: true, 97: true, 101: true, 102: true, 103: true, 104: true, 105: true,
	109: true, 121: true, 124: true, 125: true,
}

// Face API, match.yml: MatchRequest = TransactionLabels + MatchRequestData.
var matchRequestProps = set("tenant", "env", "tag", "images", "outputImageParams")

// Face API, match.yml: MatchImage.properties.
var matchImageProps = set("index", "type", "data", "detectAll")

// Face API, detect.yml: DetectRequest = TransactionLabels + DetectRequestData.
var detectRequestProps = set("tenant", "env", "tag", "processParam", "image")

// Face API, common.yml: ProcessParam.properties.
var faceProcessParamProps = set("scenario", "onlyCentralFace", "outputImageParams", "quality", "attributes")

// Face API, common.yml: ImageSource.enum.
var imageSources = map[int]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true}
